"""Real-size random-init LVLMs (scripts/build_real_lvlms.py): published sizes, reuse parity.

Slow: each model is built on first use into `$ZSAR_CACHE_DIR/real-lvlms` (0.9-3.6 GB, 1-5
minutes) and one frame costs seconds to tens of seconds on 2 CPU threads. Per model: the
parameter count and image tokens per 640x360 frame of the published configuration, and the
cached path's p_yes (image features once per frame, shared prefix per question) against the
model's own forward (`reuse=False`), to 1e-5 in float32, on two frames of different sizes asked
two questions of different lengths.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scripts.build_real_lvlms import ensure
from zsar_cli.backends import load_lvlm
from zsar_cli.backends.lvlm_base import yes_no_many
from zsar_cli.prompts import ZEAL_FRAME_PROMPT
from zsar_cli.synthetic import random_object, render_frame

pytestmark = pytest.mark.slow
torch.set_num_threads(2)

# name → (parameters in millions, image tokens of a 640x360 frame)
PUBLISHED = {
    "smolvlm2-256m": (256.5, 64),
    "llava-onevision-0.5b": (893.7, 2052),
    "qwen2.5-vl-3b-vision": (839.9, 299),
}
QUESTIONS = [
    ZEAL_FRAME_PROMPT.format(
        label="a red circle", question="Is the object just appearing at the edge of the frame?"
    ),
    "Is there any object in this frame?",
]


@pytest.fixture(scope="module", params=list(PUBLISHED))
def real(request):
    folder = ensure(request.param)
    lvlm = load_lvlm(f"hf:{folder}", device="cpu", dtype="float32", batch_size=4)
    return request.param, folder, lvlm


def test_published_sizes(real):
    import json

    name, folder, lvlm = real
    record = json.loads((folder / "BUILD.json").read_text())
    params, tokens = PUBLISHED[name]
    assert sum(p.numel() for p in lvlm.model.parameters()) / 1e6 == pytest.approx(params, abs=0.1)
    assert record["image_tokens_640x360"] == tokens


def test_reuse_parity_at_real_size(real):
    _, _, lvlm = real
    rng = np.random.default_rng(0)
    frames = [
        render_frame(640, 360, [random_object(rng, 640, 360)], rng=rng),
        render_frame(480, 360, [random_object(rng, 480, 360)], rng=rng),
    ]
    lvlm.reuse = False
    plain = yes_no_many(lvlm, [[f] for f in frames], QUESTIONS)
    lvlm.reuse = True
    lvlm.features.clear()
    cached = yes_no_many(lvlm, [[f] for f in frames], QUESTIONS)
    np.testing.assert_allclose(cached.p_yes, plain.p_yes, atol=1e-5)
    assert lvlm.features.vision_runs == 2
    assert lvlm.stats["shared_rows"] == 4  # every family here puts the images first


def every_token_kept(lvlm):
    """Four 320x180 frames in two paths, with Self-ReS keeping every per-frame image token."""
    from zsar_cli.stages.select_tokens import FrameItem, select_video_tokens
    from zsar_cli.stages.select_tokens_config import SelectTokensConfig

    rng = np.random.default_rng(3)
    obj = random_object(rng, 320, 180)
    images = [render_frame(320, 180, [obj], rng=rng) for _ in range(4)]
    items = [FrameItem(i, i * 0.5, i // 2, im) for i, im in enumerate(images)]
    cfg = SelectTokensConfig(question="q", budget=1, segments=1, video_input="images")
    one = select_video_tokens(lvlm, "v", items[:1], QUESTIONS[1], cfg)
    cfg = SelectTokensConfig(question="q", budget=4 * one.tokens_per_frame, video_input="images")
    return images, items, select_video_tokens(lvlm, "v", items, QUESTIONS[1], cfg)


@pytest.fixture(scope="module")
def real_qwen():
    folder = ensure("qwen2.5-vl-3b-vision")
    return load_lvlm(f"hf:{folder}", device="cpu", dtype="float32", batch_size=2)


def test_qwen_self_res_and_native_times_at_real_size(real_qwen):
    """Qwen2.5-VL-3B's vision tower and processor (tokens_per_second 2): every token kept gives
    the plain p_yes (1e-4), and a VFR clip's temporal positions follow its real times."""
    from zsar_cli.backends.lvlm_base import Clip, set_video_input
    from zsar_cli.stages.self_res import answer_yes_no, kept_from_selection
    from zsar_cli.stages.token_scores import uncapped_frames

    lvlm = real_qwen
    images, _, sel = every_token_kept(lvlm)
    question = QUESTIONS[1]
    with uncapped_frames(lvlm):
        plain = lvlm.yes_no([images], [question])
    p_yes = answer_yes_no(lvlm, kept_from_selection(sel), 320, 180, question)[0]
    assert abs(p_yes - float(plain.p_yes[0])) <= 1e-4
    set_video_input(lvlm, "native")
    times = [12.0, 12.04, 14.0, 14.1]  # two temporal patches, starting at 12.0 and 14.0 s
    inputs = lvlm.build_inputs([Clip(images, times)], [question])
    temporal = inputs.position_ids[0, 0, inputs.image_token_mask[0]]
    assert lvlm.model.config.vision_config.tokens_per_second == 2
    assert sorted(set((temporal - temporal.min()).tolist())) == [0, 4]  # 2 s × 2 per second


@pytest.fixture(scope="module")
def real_qwen3():
    folder = ensure("qwen3-vl-4b-vision")
    return folder, load_lvlm(f"hf:{folder}", device="cpu", dtype="float32", batch_size=2)


def test_qwen3_vl_self_res_and_native_times_at_real_size(real_qwen3):
    """Qwen3-VL-4B's vision tower, DeepStack mergers and processor: 220 tokens per 640x360 frame,
    each kept token carries three DeepStack features, every token kept gives the plain p_yes
    (1e-4, through the float16 tokens artifact too), and a VFR clip's "<t seconds>" stamps are
    the means of its temporal patches' real times."""
    import json
    from dataclasses import replace

    from zsar_cli.backends.lvlm_base import Clip, set_video_input
    from zsar_cli.stages.select_tokens import select_video_tokens, tokens_table
    from zsar_cli.stages.select_tokens_config import SelectTokensConfig
    from zsar_cli.stages.self_res import answer_yes_no, kept_from_rows, kept_from_selection
    from zsar_cli.stages.token_scores import uncapped_frames

    folder, lvlm = real_qwen3
    record = json.loads((folder / "BUILD.json").read_text())
    assert record["image_tokens_640x360"] == 220
    assert sum(p.numel() for p in lvlm.model.model.visual.parameters()) / 1e6 == pytest.approx(
        415.5, abs=1.0
    )
    images, items, sel = every_token_kept(lvlm)
    question = QUESTIONS[1]
    assert {tuple(d.shape) for d in sel.deepstack} == {(3, 2560)}
    with uncapped_frames(lvlm):
        plain = lvlm.yes_no([images], [question])
    p_yes = answer_yes_no(lvlm, kept_from_selection(sel), 320, 180, question)[0]
    assert abs(p_yes - float(plain.p_yes[0])) <= 1e-4
    stored = kept_from_rows(tokens_table([sel]))
    assert abs(answer_yes_no(lvlm, stored, 320, 180, question)[0] - float(plain.p_yes[0])) <= 1e-3
    # Self-ReS over native video tokens (two temporal patches per path), every token kept.
    set_video_input(lvlm, "native")
    native = SelectTokensConfig(question="q", video_input="native", budget=1)
    per_patch = select_video_tokens(lvlm, "v", items, question, native).tokens_per_frame
    sel = select_video_tokens(lvlm, "v", items, question, replace(native, budget=2 * per_patch))
    with uncapped_frames(lvlm):
        plain = lvlm.yes_no([Clip(images, [i * 0.5 for i in range(4)])], [question])
    p_yes = answer_yes_no(lvlm, kept_from_selection(sel), 320, 180, question)[0]
    assert abs(p_yes - float(plain.p_yes[0])) <= 1e-4
    times = [12.0, 12.04, 14.0, 14.1]  # two temporal patches: means 12.02 and 14.05 s
    prompt = lvlm.tokenizer.decode(
        lvlm.build_inputs([Clip(images, times)], [question]).input_ids[0]
    )
    stamps = [part.split(" seconds>")[0] for part in prompt.split("<")[1:] if "seconds>" in part]
    assert stamps == ["12.0", "14.1"]


def test_native_video_self_res_at_real_size(real):
    """Each family's published processor and vision tower, native video: Self-ReS with every
    video token kept gives the plain native clip's p_yes (1e-4); SmolVLM2 (its own classes)
    writes the frames' real times of a mid-video VFR clip as "Frame from MM:SS"."""
    from zsar_cli.backends.lvlm_base import Clip, set_video_input
    from zsar_cli.stages.select_tokens import FrameItem, select_video_tokens
    from zsar_cli.stages.select_tokens_config import SelectTokensConfig
    from zsar_cli.stages.self_res import answer_yes_no, kept_from_selection
    from zsar_cli.stages.self_res_video import resolve_video_input
    from zsar_cli.stages.token_scores import uncapped_frames

    name, _, lvlm = real
    assert resolve_video_input(lvlm, "auto") == "native"
    rng = np.random.default_rng(5)
    obj = random_object(rng, 320, 180)
    images = [render_frame(320, 180, [obj], rng=rng) for _ in range(4)]
    times = [61.0, 61.04, 62.5, 64.25]
    items = [
        FrameItem(i, t, i // 2, im) for i, (im, t) in enumerate(zip(images, times, strict=True))
    ]
    question = QUESTIONS[1]
    cfg = SelectTokensConfig(question="q", video_input="native", budget=1)
    per_unit = select_video_tokens(lvlm, "v", items, question, cfg).tokens_per_frame
    units = 2 if name.startswith("qwen") else 4
    cfg = SelectTokensConfig(question="q", video_input="native", budget=units * per_unit)
    sel = select_video_tokens(lvlm, "v", items, question, cfg)
    with uncapped_frames(lvlm):
        plain = lvlm.yes_no([Clip(images, times)], [question])
    p_yes = answer_yes_no(lvlm, kept_from_selection(sel), 320, 180, question)[0]
    assert abs(p_yes - float(plain.p_yes[0])) <= 1e-4
    if name == "smolvlm2-256m":
        assert lvlm.model_type == "smolvlm"
        prompt = lvlm.tokenizer.decode(lvlm.build_inputs([Clip(images, times)], ["?"]).input_ids[0])
        stamps = [part.split(":<")[0] for part in prompt.split("Frame from ")[1:]]
        assert stamps == ["01:01", "01:01", "01:02", "01:04"]
    set_video_input(lvlm, "images")
