"""The backend registry: registering schemes, the Protocols loaders return, refusals.

Uses the `fake:` backend that conftest registers (tests/fakes.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from tests import fakes
from zsar_cli.backends import (
    LVLM_SCHEMES,
    load_encoder,
    load_lvlm,
    register_lvlm_scheme,
    register_scheme,
)
from zsar_cli.backends.base import Encoder, PatchTokenEncoder
from zsar_cli.backends.lvlm_base import LVLM, SelectionHooks
from zsar_cli.errors import ConfigError, ModelError
from zsar_cli.stages.select_tokens import check_family


class HalfLVLM:
    """Answers yes/no and nothing else: not an `LVLM`."""

    spec = "half:x"

    def yes_no(self, images_per_prompt, prompts):  # pragma: no cover - never called
        raise AssertionError


def load_half(rest: str, **options) -> HalfLVLM:
    return HalfLVLM()


def test_fake_loaders_return_the_protocols():
    encoder = load_encoder("fake:clip", device="cpu", precision="fp32", batch_size=4)
    assert isinstance(encoder, Encoder) and isinstance(encoder, PatchTokenEncoder)
    assert encoder.spec == "fake:clip" and encoder.dim == fakes.DIM
    texts = encoder.encode_texts(["a", "b", "a"])
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(texts[0], texts[2])
    lvlm = load_lvlm("fake:lvlm", device="cpu", batch_size=2)
    assert isinstance(lvlm, LVLM) and not isinstance(lvlm, SelectionHooks)
    assert lvlm.options == {"device": "cpu", "batch_size": 2}


def test_unknown_scheme_lists_the_registered_ones():
    with pytest.raises(
        ModelError, match=r"unknown LVLM scheme 'nope' .*known: hf, openai, builtin, fake"
    ):
        load_lvlm("nope:x")


def test_register_scheme_refusals():
    with pytest.raises(ConfigError, match="a scheme other than 'builtin'"):
        register_scheme("lvlm", "builtin", "tests.fakes:load_fake_lvlm")
    with pytest.raises(ConfigError, match=r"package\.module:function"):
        register_scheme("encoder", "other", "tests.fakes.load_fake_encoder")
    with pytest.raises(ConfigError, match="unknown backend kind 'audio'"):
        register_scheme("audio", "x", "tests.fakes:load_fake_lvlm")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"'fake' is already registered to tests\.fakes"):
        register_lvlm_scheme("fake", "tests.fakes:load_fake_encoder")
    register_lvlm_scheme("fake", "tests.fakes:load_fake_lvlm")  # the same again: a no-op


def test_a_backend_that_breaks_the_protocol_is_refused_at_load():
    register_lvlm_scheme("half", "tests.test_backends_registry:load_half")
    try:
        with pytest.raises(ModelError) as err:
            load_lvlm("half:x")
    finally:
        del LVLM_SCHEMES["half"]
    message = str(err.value)
    assert message.startswith("half:x: the half: backend returned a HalfLVLM, which is not an LVLM")
    assert "lacks choice, choice_batch, generate" in message and "\n" not in message


def test_token_selection_refuses_the_fake_in_one_line_naming_it():
    with pytest.raises(ModelError) as err:
        check_family(load_lvlm("fake:lvlm"))
    message = str(err.value)
    assert message.startswith("fake:lvlm: this LVLM backend has no token-selection hooks (lacks ")
    assert "build_inputs" in message and "\n" not in message
