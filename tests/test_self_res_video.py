"""Self-ReS over native video tokens (`--video-input native`), per family that serves it.

Tiny random-init SmolVLM2 (one unit = one frame, "Frame from MM:SS:"), LLaVA-OneVision (a frame
of pooled video tokens, time instruction), Qwen2.5-VL (one unit =
a temporal patch of two frames, temporal positions from real times) and Qwen3-VL (temporal
patches after "<t seconds>", DeepStack features): with every token kept the final pass equals
the plain native clip prompt (p_yes within 1e-4, and 1e-3 through the float16 tokens
artifact); with fewer tokens the model is told the kept units' real times (VFR, mid-video).
LLaVA-OneVision (one unit = a frame; the clip's trailing newline feature always kept) too;
image-only families fall back (auto) or fail in one line (native).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zsar_cli.artifacts import read_artifact
from zsar_cli.backends import load_lvlm
from zsar_cli.backends.hf_video import time_instruction
from zsar_cli.backends.lvlm_base import Clip, set_video_input
from zsar_cli.errors import ModelError
from zsar_cli.stages.select_tokens import (
    FrameItem,
    SelectionError,
    select_video_tokens,
    tokens_table,
)
from zsar_cli.stages.select_tokens_config import SelectTokensConfig
from zsar_cli.stages.self_res import answer_yes_no, final_inputs, kept_from_rows
from zsar_cli.stages.self_res import kept_from_selection as kept
from zsar_cli.stages.self_res_video import resolve_video_input
from zsar_cli.stages.token_scores import uncapped_frames
from zsar_cli.synthetic import random_object, render_frame

from .tiny_lvlms import (
    build_tiny_idefics3,
    build_tiny_llava_onevision,
    build_tiny_qwen2_5_vl,
    build_tiny_qwen3_vl,
    build_tiny_smolvlm,
    write_frame_items,
)

torch.set_num_threads(2)
W, H = 128, 96
QUESTION = "is there any object ?"
BUILDERS = {
    "smolvlm": build_tiny_smolvlm,
    "llava_onevision": build_tiny_llava_onevision,
    "qwen2_5_vl": build_tiny_qwen2_5_vl,
    "qwen3_vl": build_tiny_qwen3_vl,
}
# Two paths of four frames: a variable-frame-rate clip that starts mid-video.
TIMES = [61.0, 61.04, 61.5, 62.25, 64.0, 64.1, 66.0, 67.5]


@pytest.fixture(scope="module", params=list(BUILDERS))
def family(request, tmp_path_factory):
    folder = BUILDERS[request.param](tmp_path_factory.mktemp(request.param))
    lvlm = load_lvlm(f"hf:{folder}", device="cpu", dtype="float32", batch_size=4)
    assert resolve_video_input(lvlm, "auto") == "native"
    return request.param, folder, lvlm


def frames(times=TIMES, per_segment=4, seed=0) -> list[FrameItem]:
    rng = np.random.default_rng(seed)
    obj = random_object(rng, W, H)
    return [
        FrameItem(i, t, i // per_segment, render_frame(W, H, [obj], rng=rng))
        for i, t in enumerate(times)
    ]


def config(**kw) -> SelectTokensConfig:
    return SelectTokensConfig(question=QUESTION, video_input="native", **kw)


def per_unit(lvlm, items):
    """Tokens per unit at the resolution of the whole video's clip."""
    return select_video_tokens(lvlm, "v", items, QUESTION, config(budget=2))


def test_all_tokens_kept_gives_the_plain_native_clip_p_yes(family):
    name, _, lvlm = family
    items = frames()
    unit = per_unit(lvlm, items)
    units = len(items) // (2 if name.startswith("qwen") else 1)
    everything = units * unit.tokens_per_frame
    sel = select_video_tokens(lvlm, "v", items, QUESTION, config(budget=everything))
    assert sel.available == everything
    assert len(sel.frame_times) == everything
    with uncapped_frames(lvlm):
        plain = lvlm.yes_no([Clip([f.image for f in items], TIMES)], [QUESTION])
    p_yes = answer_yes_no(lvlm, kept(sel), W, H, QUESTION)[0]
    assert abs(p_yes - float(plain.p_yes[0])) <= 1e-4
    stored = kept_from_rows(tokens_table([sel]))
    assert abs(answer_yes_no(lvlm, stored, W, H, QUESTION)[0] - float(plain.p_yes[0])) <= 1e-3
    # and it is not the per-frame image prompt's answer the parity could hide behind
    set_video_input(lvlm, "images")
    with uncapped_frames(lvlm):
        as_images = lvlm.yes_no([[f.image for f in items]], [QUESTION])
    set_video_input(lvlm, "native")
    assert abs(float(as_images.p_yes[0]) - p_yes) > 1e-6


def test_the_final_pass_tells_the_model_the_kept_units_times(family):
    """Keep the tokens of a few units only: the final pass's clip has just those units, with the
    times they were shown at (never renumbered from 0 or spaced by an assumed rate)."""
    name, _, lvlm = family
    items = frames()
    unit = per_unit(lvlm, items).tokens_per_frame
    sel = select_video_tokens(lvlm, "v", items, QUESTION, config(budget=2 * unit))
    units = kept(sel)
    k = 2 if name.startswith("qwen") else 1
    assert all(len(u.times) == k for u in units)
    assert [t for u in units for t in u.times] == [
        items[u.frame_index + j].timestamp for u in units for j in range(k)
    ]
    embedded = final_inputs(lvlm, units, W, H, QUESTION)
    newline = 1 if name == "llava_onevision" else 0  # the clip's trailing newline feature
    assert int(embedded.image_token_mask.sum()) == 2 * unit + newline
    stand_in = np.zeros((H, W, 3), np.uint8)
    times = [t for u in units for t in u.times]
    with uncapped_frames(lvlm):
        layout = lvlm.build_inputs([Clip([stand_in] * len(times), times)], [QUESTION])
    prompt = lvlm.tokenizer.decode(layout.input_ids[0])
    if name == "smolvlm":
        stamps = [p.split(":<")[0] for p in prompt.split("Frame from ")[1:]]
        assert stamps == [f"{int(t // 60):02d}:{int(t % 60):02d}" for t in times]
    elif name == "llava_onevision":  # the time instruction lists the kept frames' times
        assert layout.texts is not None and time_instruction(times) in layout.texts[0]
    elif name == "qwen3_vl":
        stamps = [p.split(" seconds>")[0] for p in prompt.split("<")[1:] if "seconds>" in p]
        assert stamps == [f"{(u.times[0] + u.times[1]) / 2:.1f}" for u in units]
    else:  # Qwen2.5-VL: the temporal row steps by tokens_per_second × the real gap
        per_second = lvlm.model.config.vision_config.tokens_per_second
        temporal = embedded.position_ids[0, 0][embedded.image_token_mask[0]]
        starts = np.cumsum([0] + [len(u.token_index) for u in units[:-1]])
        firsts = temporal[torch.as_tensor(starts)]
        gaps = [int((b.times[0] - units[0].times[0]) * per_second + 1e-6) for b in units]
        assert (firsts - firsts[0]).tolist() == gaps


def test_qwen_paths_must_fill_temporal_patches(tmp_path):
    lvlm = load_lvlm(f"hf:{build_tiny_qwen2_5_vl(tmp_path / 'q')}", device="cpu", dtype="float32")
    resolve_video_input(lvlm, "native")
    items = frames(TIMES[:6], per_segment=3)  # two paths of 3 frames
    with pytest.raises(SelectionError) as info:
        select_video_tokens(lvlm, "v", items, QUESTION, config(budget=4))
    assert "temporal patches of 2" in str(info.value) and "\n" not in str(info.value)


def test_families_without_a_video_path_fall_back_or_fail_in_one_line(tmp_path):
    """auto falls back to per-frame images; native fails in one line naming why."""
    idefics = load_lvlm(f"hf:{build_tiny_idefics3(tmp_path / 'i')}", device="cpu", dtype="float32")
    assert resolve_video_input(idefics, "auto") == "images"
    with pytest.raises(ModelError) as info:
        resolve_video_input(idefics, "native")
    assert "--video-input images" in str(info.value) and "\n" not in str(info.value)


def test_llava_onevision_keeps_its_clip_newline_feature(tmp_path):
    """LLaVA-OneVision appends one newline feature to a clip's video tokens: it is never scored,
    and the final pass puts the model's own newline parameter in its slot, always kept."""
    folder = build_tiny_llava_onevision(tmp_path / "llava")
    lvlm = load_lvlm(f"hf:{folder}", device="cpu", dtype="float32")
    assert resolve_video_input(lvlm, "auto") == "native"
    items = frames()
    unit = per_unit(lvlm, items).tokens_per_frame
    sel = select_video_tokens(lvlm, "v", items, QUESTION, config(budget=3))
    assert sel.available == len(items) * unit and max(sel.token_index) < unit
    embedded = final_inputs(lvlm, kept(sel), W, H, QUESTION)
    visual = embedded.inputs_embeds[0][embedded.image_token_mask[0]]
    assert visual.shape[0] == 3 + 1
    torch.testing.assert_close(visual[-1], lvlm.model.model.image_newline)


def test_cli_chain_native_by_default_and_recorded(tmp_path, runner):
    """select-tokens on SmolVLM2 selects over its video tokens by default (auto) and records it;
    query-lvlm --tokens answers as that native clip, and refuses another --video-input."""
    from zsar_cli.cli.app import app

    folder = build_tiny_smolvlm(tmp_path / "smol")
    items = frames()
    src = write_frame_items(tmp_path / "frames.parquet", items)
    tokens, answers = tmp_path / "tokens.parquet", tmp_path / "answers.parquet"
    common = ["-m", f"hf:{folder}", "--question", QUESTION, "--device", "cpu"]
    lvlm = load_lvlm(f"hf:{folder}", device="cpu", dtype="float32")
    resolve_video_input(lvlm, "native")
    everything = len(items) * per_unit(lvlm, items).tokens_per_frame
    chosen = runner.invoke(
        app,
        ["select-tokens", str(src), "-o", str(tokens), *common, "--budget", str(everything)],
    )
    assert chosen.exit_code == 0, chosen.output
    made = read_artifact(tokens, "tokens")
    assert made.meta.extra_json("video_input") == "native"
    assert "frame_times" in made.table.column_names
    asked = runner.invoke(
        app, ["query-lvlm", str(src), "--tokens", str(tokens), "-o", str(answers), *common]
    )
    assert asked.exit_code == 0, asked.output
    with uncapped_frames(lvlm):
        plain = lvlm.yes_no([Clip([f.image for f in items], TIMES)], [QUESTION])
    got = read_artifact(answers, "answers")
    assert got.meta.extra_json("video_input") == "native"
    assert abs(got.table.column("p_yes")[0].as_py() - float(plain.p_yes[0])) <= 1e-3
    elsewhere = str(tmp_path / "x.parquet")
    args = ["query-lvlm", str(src), "--tokens", str(tokens), "-o", elsewhere, *common]
    refused = runner.invoke(app, [*args, "--video-input", "images"])
    assert refused.exit_code != 0
    assert "selected with --video-input native" in refused.output
    assert "Traceback" not in refused.output


def test_paths_are_laid_out_at_the_whole_videos_resolution(family):
    """Qwen3-VL's video processor shares one pixel budget among a clip's frames, so a 4-frame
    path would get more tokens per frame than the 8-frame video; laid out with the video's
    frame count it gets the video's grid (the other families' grids never depend on it)."""
    name, _, lvlm = family
    images = [f.image for f in frames()]

    def grid(clip):
        with uncapped_frames(lvlm):
            inputs = lvlm.build_inputs([clip], [QUESTION])
        return int(inputs.image_token_mask[0].sum()) // len(clip)

    whole = grid(Clip(images, TIMES))
    alone = grid(Clip(images[:4], TIMES[:4]))
    assert grid(Clip(images[:4], TIMES[:4], resolution_frames=8)) == whole
    if name == "qwen3_vl":
        assert alone > whole  # 12 vs 6 tokens per frame pair here: the sharing is real
    else:
        assert alone == whole


def test_classify_self_res_selects_over_native_video(tmp_path, runner):
    """classify --lvlm --self-res on SmolVLM2: auto selects among its video tokens and records
    the mode in effect (in the cache key too); --video-input images answers otherwise."""
    from zsar_cli.cli.app import app
    from zsar_cli.synthetic import LABELS, write_video

    VW, VH, FPS, FRAMES = 160, 120, 8, 64

    folder = build_tiny_smolvlm(tmp_path / "smol")
    rng = np.random.default_rng(1)
    obj = random_object(rng, VW, VH, label=LABELS[0], max_speed=0.0)
    write_video(tmp_path / "v.mp4", [render_frame(VW, VH, [obj], rng=rng)] * FRAMES, VW, VH, FPS)
    (tmp_path / "labels.txt").write_text("\n".join(LABELS[:4]) + "\n")
    scores = {}
    for mode in ("auto", "images"):
        out = tmp_path / f"{mode}.parquet"
        args = ["classify", str(tmp_path / "v.mp4"), "--labels", str(tmp_path / "labels.txt")]
        args += ["-m", "builtin:world-clip", "--device", "cpu", "--lvlm", f"hf:{folder}"]
        args += ["--self-res", "--segments", "2", "--frames-per-segment", "2", "--budget", "8"]
        args += ["--shortlist", "3", "--video-input", mode, "-o", str(out)]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        made = read_artifact(out, "predictions")
        resolved = "native" if mode == "auto" else "images"
        assert made.meta.extra_json("video_input") == resolved
        assert made.meta.config["lvlm"]["video_input"] == resolved
        scores[mode] = made.table.sort_by("rank").column("score").to_numpy()[:3]
        assert scores[mode].sum() == pytest.approx(1.0)
    assert not np.allclose(scores["auto"], scores["images"], atol=1e-6)
