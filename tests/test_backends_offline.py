"""Hub specs without network or cache fail at once with one actionable line (no retry storm)."""

from __future__ import annotations

import time

import pytest

from zsar_cli.backends import load_encoder, load_lvlm, load_text_generator
from zsar_cli.errors import ModelError


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    # An empty cache and offline mode: the same as a machine without network, deterministically.
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.mark.parametrize(
    ("load", "spec", "hint"),
    [
        (load_lvlm, "hf:HuggingFaceTB/SmolVLM2-256M-Video-Instruct", "hf:/path/to/dir"),
        (load_encoder, "openclip:ViT-B-32/laion2b_s34b_b79k", "openclip:ViT-B-32@"),
        (load_text_generator, "hf:HuggingFaceTB/SmolLM2-360M-Instruct", "hf:/path/to/dir"),
    ],
)
def test_uncached_hub_model_fails_fast_with_a_hint(load, spec, hint):
    start = time.perf_counter()
    with pytest.raises(ModelError) as err:
        load(spec) if load is not load_encoder else load(spec, device="cpu")
    assert time.perf_counter() - start < 20
    message = str(err.value)
    assert "\n" not in message and hint in message, message
