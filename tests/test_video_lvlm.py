"""Native video input (`--video-input native`) and Qwen-VL in every mode, per family.

Tiny random-init models of the real architectures and processors (tests/tiny_lvlms.py):
SmolVLM2 (timestamped prompt), LLaVA-OneVision (video tokens + time instruction), Qwen2.5-VL
(temporal positions), Qwen3-VL (timestamped prompt). Checked against the frames' real times for
a 29.97 fps clip, a variable-frame-rate one and one starting mid-video: the times read back from
the rendered prompt or from the computed position ids are the timestamps given. The cached
path (reuse) is held to the model's own forward on clips; a family without a video path fails
with one line naming what is missing.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zsar_cli.backends import load_lvlm
from zsar_cli.backends.hf_video import temporal_patch_times, time_instruction
from zsar_cli.backends.lvlm_base import Clip, choice_many, generate_many, set_video_input
from zsar_cli.errors import ModelError
from zsar_cli.synthetic import random_object, render_frame

from .tiny_lvlms import (
    build_tiny_idefics3,
    build_tiny_llava_onevision,
    build_tiny_qwen2_5_vl,
    build_tiny_qwen3_vl,
    build_tiny_smolvlm,
)

torch.set_num_threads(2)

BUILDERS = {
    "smolvlm": build_tiny_smolvlm,
    "llava_onevision": build_tiny_llava_onevision,
    "qwen2_5_vl": build_tiny_qwen2_5_vl,
    "qwen3_vl": build_tiny_qwen3_vl,
}
# Frame times of three kinds of input (seconds, as extract-frames records them).
TIMINGS = {
    "29.97fps": [i * 1001 / 30000 for i in range(0, 40, 8)],
    "vfr": [0.0, 0.04, 0.2, 0.21, 0.9, 1.5],
    "mid-video": [61.25, 61.75, 62.25, 63.5],
}
QUESTION = "is there any object ?"


@pytest.fixture(scope="module", params=list(BUILDERS))
def family(request, tmp_path_factory):
    folder = BUILDERS[request.param](tmp_path_factory.mktemp(request.param))
    lvlm = load_lvlm(f"hf:{folder}", device="cpu", dtype="float32", batch_size=4)
    assert set_video_input(lvlm, "auto") == "native"
    return request.param, lvlm


def clip(times, seed=0) -> Clip:
    rng = np.random.default_rng(seed)
    obj = random_object(rng, 64, 48)
    return Clip([render_frame(64, 48, [obj], rng=rng) for _ in times], times)


def mmss(seconds: float) -> str:
    return f"{int(seconds // 60):02d}:{int(seconds % 60):02d}"


@pytest.mark.parametrize("timing", list(TIMINGS))
def test_times_given_to_the_model_are_the_frames_timestamps(family, timing):
    name, lvlm = family
    times = TIMINGS[timing]
    inputs = lvlm.build_inputs([clip(times)], [QUESTION])
    ids = inputs.input_ids[0]
    prompt = lvlm.tokenizer.decode(ids)
    if name == "smolvlm":
        stamps = [part.split(":<")[0] for part in prompt.split("Frame from ")[1:]]
        assert stamps == [mmss(t) for t in times]
    elif name == "qwen3_vl":
        # One timestamp per temporal patch of two frames: their mean, as the model was trained.
        padded = times + [times[-1]] * (len(times) % 2)
        means = [(padded[i] + padded[i + 1]) / 2 for i in range(0, len(padded), 2)]
        stamps = [
            part.split(" seconds>")[0] for part in prompt.split("<")[1:] if "seconds>" in part
        ]
        assert stamps == [f"{m:.1f}" for m in means]
    elif name == "llava_onevision":
        assert inputs.texts is not None and time_instruction(times) in inputs.texts[0]
        listed = inputs.texts[0].split("located at ")[1].split(". Please")[0]
        assert [float(s.rstrip("s")) for s in listed.split(",")] == pytest.approx(times, abs=5e-3)
    else:  # qwen2_5_vl: temporal positions, tokens_per_second per second since the first frame
        per_second = lvlm.model.config.vision_config.tokens_per_second
        video = inputs.image_token_mask[0]
        temporal = inputs.position_ids[0, 0, video]
        grid = inputs.tensors["video_grid_thw"][0]
        per_patch = int(grid[1] * grid[2]) // 4
        starts = temporal_patch_times(times, 2)
        got = temporal.reshape(len(starts), per_patch)
        assert bool((got == got[:, :1]).all())
        expected = [int((t - starts[0]) * per_second + 1e-6) for t in starts]
        assert (got[:, 0] - got[0, 0]).tolist() == expected


def test_qwen2_5_vl_constant_rate_positions_equal_the_models_own():
    """At a constant frame rate the model's own interval (2 / fps per patch) is right, so its
    positions must equal the ones recomputed from the frames' times."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        lvlm = load_lvlm(f"hf:{build_tiny_qwen2_5_vl(Path(tmp))}", device="cpu", dtype="float32")
    set_video_input(lvlm, "native")
    fps = 30000 / 1001
    times = [i / fps for i in range(0, 160, 16)]  # every 16th frame: 1.87 fps
    inputs = lvlm.build_inputs([clip(times)], [QUESTION])
    tensors = dict(inputs.tensors)
    tensors["second_per_grid_ts"] = torch.tensor([2 * 16 / fps])
    own = lvlm.model.model.compute_3d_position_ids(
        input_ids=tensors["input_ids"],
        image_grid_thw=None,
        video_grid_thw=tensors["video_grid_thw"],
        inputs_embeds=lvlm.model.get_input_embeddings()(tensors["input_ids"]),
        attention_mask=tensors["attention_mask"],
        cache=None,
        second_per_grid_ts=tensors["second_per_grid_ts"],
        mm_token_type_ids=tensors["mm_token_type_ids"],
    )
    lvlm.model.model.rope_deltas = None
    assert torch.equal(own, inputs.position_ids)
    assert int(own[0, 0].max()) > int(own[1, 0].max())  # time positions spread past space


def test_clip_answers_reuse_equals_the_models_own_forward(family):
    _, lvlm = family
    clips = [clip(TIMINGS["vfr"], seed=1), clip(TIMINGS["mid-video"], seed=2)]
    questions = [QUESTION, "is there a red circle in this frame ?"]
    lvlm.reuse = False
    plain = lvlm.yes_no([c for c in clips for _ in questions], questions * 2)
    plain_choice = choice_many(lvlm, clips, ["which of these is shown ?"], ["a", "b", "c"])
    plain_text = generate_many(lvlm, clips, [QUESTION], 4)
    lvlm.reuse = True
    lvlm.features.clear()
    cached = lvlm.yes_no([c for c in clips for _ in questions], questions * 2)
    np.testing.assert_allclose(cached.p_yes, plain.p_yes, atol=1e-5)
    cached_choice = choice_many(lvlm, clips, ["which of these is shown ?"], ["a", "b", "c"])
    np.testing.assert_allclose(cached_choice, plain_choice, atol=1e-5)
    assert generate_many(lvlm, clips, [QUESTION], 4) == plain_text
    # Native and images layouts are different prompts: different answers, separate cache keys.
    set_video_input(lvlm, "images")
    as_images = lvlm.yes_no([clips[0]], [QUESTION])
    set_video_input(lvlm, "native")
    assert abs(float(as_images.p_yes[0]) - float(plain.p_yes[0])) > 1e-7


def test_family_without_a_video_path_fails_with_one_line(tmp_path):
    lvlm = load_lvlm(f"hf:{build_tiny_idefics3(tmp_path / 'i3')}", device="cpu", dtype="float32")
    with pytest.raises(ModelError, match=r"native: model family idefics3 has no native video path"):
        set_video_input(lvlm, "native")
    assert set_video_input(lvlm, "auto") == "images"
    world = load_lvlm("builtin:world-lvlm", device="cpu", dtype="float32")
    with pytest.raises(ModelError) as info:
        set_video_input(world, "native")
    assert "\n" not in str(info.value) and "--video-input images" in str(info.value)


def test_classify_lvlm_gives_the_linear_frames_with_their_times(family):
    from zsar_cli.stages.classify_lvlm import lvlm_rerank
    from zsar_cli.stages.select_tokens import FrameItem
    from zsar_cli.stages.select_tokens_config import LVLMChoiceConfig

    name, lvlm = family
    if name != "smolvlm":
        pytest.skip("one family is enough for the stage's plumbing")
    times = TIMINGS["vfr"]
    frames = [
        FrameItem(i, t, -1, im) for i, (t, im) in enumerate(zip(times, clip(times), strict=True))
    ]
    seen = []
    original = lvlm.choice

    def recording(images, question, options):
        seen.append(images)
        return original(images, question, options)

    lvlm.choice = recording
    try:
        probs = lvlm_rerank(lvlm, frames, "v", ["a", "b"], LVLMChoiceConfig(frames=3), "cpu")
    finally:
        del lvlm.choice
    assert isinstance(seen[0], Clip) and seen[0].times == (0.0, 0.2, 1.5)
    assert probs.shape == (2,) and abs(float(probs.sum()) - 1) < 1e-9
