"""`query-lvlm` stage: queries, p_yes parity with the backend, clip level, errors, resume."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from zsar_cli.artifacts import build_table, read_artifact, write_artifact
from zsar_cli.backends import load_lvlm
from zsar_cli.backends.hf_lvlm import NO_SPELLINGS, YES_SPELLINGS
from zsar_cli.errors import ConfigError, InputError
from zsar_cli.images import decode_image, encode_image
from zsar_cli.stages import query_lvlm as stage
from zsar_cli.stages.query_lvlm import ZEAL_FRAME_PROMPT as ZEAL_PROMPT
from zsar_cli.stages.query_lvlm import QueryConfig, build_queries
from zsar_cli.synthetic import WorldObject, render_frame

torch.set_num_threads(2)
MODEL = "builtin:world-lvlm"


@pytest.fixture(scope="module")
def lvlm():
    return load_lvlm(MODEL, device="cpu", batch_size=16)


def make_frames(path, videos, frames_per_video=2, error_video=None, segments=False):
    """A frames artifact of world frames: video v shows `videos[v]` (a label or None)."""
    cols = {
        k: []
        for k in (
            "video_id",
            "path",
            "label",
            "frame_index",
            "timestamp",
            "segment",
            "width",
            "height",
            "image",
            "error",
        )
    }
    rng = np.random.default_rng(5)
    for v, label in enumerate(videos):
        vid = f"v{v}"
        if vid == error_video:
            for k in cols:
                cols[k].append(None)
            cols["video_id"][-1], cols["path"][-1] = vid, f"/x/{vid}.mp4"
            cols["error"][-1] = "cannot decode video (moov atom not found)"
            continue
        for f in range(frames_per_video):
            objs = []
            if label is not None:
                color, shape = label.split()[1:]
                objs = [WorldObject(shape, color, 0.4, 40 + 30 * f, 60)]
            rgb = render_frame(160, 120, objs, rng=rng)
            cols["video_id"].append(vid)
            cols["path"].append(f"/x/{vid}.mp4")
            cols["label"].append(label)
            cols["frame_index"].append(f * 10)
            cols["timestamp"].append(f * 0.4)
            cols["segment"].append(f // 2 if segments else -1)
            cols["width"].append(160)
            cols["height"].append(120)
            cols["image"].append(encode_image(rgb, "jpeg"))
            cols["error"].append(None)
    write_artifact(
        build_table("frames", cols),
        path,
        "frames",
        {"test": 1},
        extra_metadata={"image_encoding": "jpeg"},
    )
    return path


@pytest.fixture
def labels_file(tmp_path):
    p = tmp_path / "labels.txt"
    p.write_text("a red circle\na blue square\n")
    return p


def test_queries_from_templates_and_descriptions(tmp_path, labels_file):
    desc = tmp_path / "d.json"
    desc.write_text(
        json.dumps(
            [
                {
                    "label": "a red circle",
                    "description": "d",
                    "descriptors": ["red"],
                    "start_question": "Is a red circle appearing?",
                    "end_question": "Is it leaving?",
                },
                {
                    "label": "a blue square",
                    "description": "d",
                    "descriptors": ["blue"],
                    "start_question": "Is a blue square appearing?",
                    "end_question": "Is it gone?",
                },
            ]
        )
    )
    cfg = QueryConfig(
        question="Is there {label}?", labels_file=str(labels_file), descriptions_file=str(desc)
    )
    queries, labels = build_queries(cfg)
    assert labels == ["a red circle", "a blue square"]
    assert [(q.label, q.kind) for q in queries] == [
        ("a red circle", "class"),
        ("a blue square", "class"),
        ("a red circle", "start"),
        ("a red circle", "end"),
        ("a blue square", "start"),
        ("a blue square", "end"),
    ]
    assert queries[0].text == "Is there a red circle?"
    assert queries[2].text == (
        "This is a frame from a video of a red circle. Is a red circle "
        "appearing? Only answer yes or no."
    )
    plain, _ = build_queries(QueryConfig(question="Is there any object in this frame?"))
    assert [(q.label, q.kind) for q in plain] == [(None, "anomaly")]


def test_question_without_label_placeholder_is_refused(labels_file):
    with pytest.raises(InputError, match=r"has no \{label\} but --labels was given"):
        build_queries(QueryConfig(question="Is there an object?", labels_file=str(labels_file)))
    with pytest.raises(InputError, match="give --labels"):
        build_queries(QueryConfig(question="Is there {label}?"))
    with pytest.raises(ConfigError, match="what to ask"):
        QueryConfig().validated()
    with pytest.raises(ConfigError, match="--mode choice needs --labels"):
        QueryConfig(mode="choice").validated()


def _hand_p_yes(lvlm, image, text):
    proc, model = lvlm.processor, lvlm.model
    prompt = proc.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}],
        add_generation_prompt=True,
        tokenize=False,
    )
    with torch.no_grad():
        logits = model(**proc(text=[prompt], images=[[image]], return_tensors="pt")).logits[0, -1]
    probs = torch.softmax(logits.double(), -1)
    tok = lvlm.tokenizer
    ids = {
        s: {i for i in range(len(tok)) if tok.decode([i]) in s}
        for s in (YES_SPELLINGS, NO_SPELLINGS)
    }
    yes = float(probs[sorted(ids[YES_SPELLINGS])].sum())
    no = float(probs[sorted(ids[NO_SPELLINGS])].sum())
    return yes / (yes + no)


def test_answers_match_hand_computation_and_carry_errors(tmp_path, labels_file, lvlm):
    frames = make_frames(tmp_path / "f.parquet", ["a red circle", None, "x"], error_video="v2")
    out = tmp_path / "a.parquet"
    cfg = QueryConfig(
        model=MODEL,
        question="Is there {label} in this frame?",
        labels_file=str(labels_file),
        device="cpu",
    )
    summary = stage.run(frames, out, cfg, lvlm=lvlm)
    assert (summary.videos, summary.failed) == (3, 1)
    art = read_artifact(out, "answers")
    rows = art.table.to_pylist()
    assert len(rows) == 2 * 2 + 2 * 2 + 2  # 2 frames × 2 labels per good video; 1 × 2 for v2
    err = [r for r in rows if r["video_id"] == "v2"]
    assert all(r["error"].startswith("cannot decode video") and r["p_yes"] is None for r in err)
    assert {r["label"] for r in err} == {"a red circle", "a blue square"}
    frames_table = read_artifact(frames, "frames").table.to_pylist()
    first = frames_table[0]
    image = decode_image(first["image"], "jpeg", 160, 120)
    row = next(
        r
        for r in rows
        if r["video_id"] == "v0" and r["frame_index"] == 0 and r["label"] == "a red circle"
    )
    assert row["p_yes"] == pytest.approx(_hand_p_yes(lvlm, image, row["question"]), abs=1e-6)
    assert row["p_yes"] == pytest.approx(row["yes_mass"] / (row["yes_mass"] + row["no_mass"]))
    assert row["query_kind"] == "class" and row["timestamp"] == 0.0
    assert art.meta.extra_json("model_spec") == MODEL
    assert not list(out.parent.glob(f".{out.name}.ckpt-*"))  # checkpoints removed when done


def test_clip_level_and_choice_mode(tmp_path, labels_file, lvlm):
    frames = make_frames(
        tmp_path / "f.parquet", ["a blue square", "a red circle"], frames_per_video=4, segments=True
    )
    out = tmp_path / "clip.parquet"
    cfg = QueryConfig(
        model=MODEL,
        question="Is there {label} in this video?",
        labels_file=str(labels_file),
        level="clip",
        device="cpu",
    )
    stage.run(frames, out, cfg, lvlm=lvlm)
    rows = read_artifact(out, "answers").table.to_pylist()
    # 2 segments per video × 2 labels, clip rows have no frame_index
    assert len(rows) == 2 * 2 * 2
    assert all(r["frame_index"] is None for r in rows)
    assert sorted({(r["video_id"], r["segment"]) for r in rows}) == [
        ("v0", 0),
        ("v0", 1),
        ("v1", 0),
        ("v1", 1),
    ]
    seg0 = next(r for r in rows if r["video_id"] == "v0" and r["segment"] == 0)
    assert seg0["timestamp"] == pytest.approx(0.2)  # mean of 0.0 and 0.4
    # parity with the backend on the same two frames in one prompt
    table = read_artifact(frames, "frames").table.to_pylist()
    images = [decode_image(t["image"], "jpeg", 160, 120) for t in table[:2]]
    direct = lvlm.yes_no([images], [seg0["question"]])
    assert seg0["p_yes"] == pytest.approx(float(direct.p_yes[0]), abs=1e-6)

    out2 = tmp_path / "choice.parquet"
    cfg = QueryConfig(
        model=MODEL,
        mode="choice",
        labels_file=str(labels_file),
        device="cpu",
        option_order="clip",
    )
    stage.run(frames, out2, cfg, lvlm=lvlm)
    rows = read_artifact(out2, "answers").table.to_pylist()
    assert len(rows) == 8 * 2  # one row per frame and option
    assert {r["answer"] for r in rows} == {"A", "B"} and {r["ordering"] for r in rows} == {0}
    by_frame: dict = {}
    for r in rows:
        by_frame.setdefault((r["video_id"], r["frame_index"]), []).append(r)
    for options in by_frame.values():
        assert sum(o["p_yes"] for o in options) == pytest.approx(1.0)
    first = by_frame[("v0", 0)]
    offered = ["a red circle", "a blue square"]
    direct = lvlm.choice([images[0]], first[0]["question"], offered)
    assert [o["p_yes"] for o in first] == pytest.approx(direct.tolist(), abs=1e-6)

    # circular (the default): a second ask with the options rotated, rows per ordering
    out3 = tmp_path / "circular.parquet"
    stage.run(frames, out3, replace(cfg, option_order="circular"), lvlm=lvlm)
    rows = read_artifact(out3, "answers").table.to_pylist()
    assert len(rows) == 8 * 2 * 2
    first = [r for r in rows if (r["video_id"], r["frame_index"]) == ("v0", 0)]
    assert [(r["ordering"], r["label"], r["answer"]) for r in first] == [
        (0, offered[0], "A"),
        (0, offered[1], "B"),
        (1, offered[0], "B"),
        (1, offered[1], "A"),
    ]
    rotated = lvlm.choice([images[0]], first[0]["question"], offered[::-1])
    assert [r["p_yes"] for r in first[2:]] == pytest.approx(rotated.tolist()[::-1], abs=1e-6)


def test_generate_mode(tmp_path, lvlm):
    frames = make_frames(tmp_path / "f.parquet", ["a red circle"], frames_per_video=1)
    out = tmp_path / "g.parquet"
    cfg = QueryConfig(
        model=MODEL,
        mode="generate",
        question="Is there any object in this frame?",
        max_new_tokens=3,
        device="cpu",
    )
    stage.run(frames, out, cfg, lvlm=lvlm)
    (row,) = read_artifact(out, "answers").table.to_pylist()
    assert isinstance(row["answer"], str) and row["p_yes"] is None
    assert row["query_kind"] == "anomaly"


class Interrupt(Exception):
    pass


def test_resume_after_interruption_gives_same_output(tmp_path, labels_file, lvlm):
    frames = make_frames(
        tmp_path / "f.parquet",
        ["a red circle", None, "a blue square", None, "a red circle"],
        frames_per_video=1,
    )
    cfg = QueryConfig(
        model=MODEL,
        question="Is there {label} in this frame?",
        labels_file=str(labels_file),
        device="cpu",
    )
    full = tmp_path / "full.parquet"
    stage.run(frames, full, cfg, lvlm=lvlm)

    out = tmp_path / "resumed.parquet"
    seen: list[str] = []

    def stop_after_two(video_id: str) -> None:
        seen.append(video_id)
        if len(seen) == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        stage.run(frames, out, cfg, lvlm=lvlm, on_video=stop_after_two)
    assert not out.exists()  # nothing half-written under the final name
    key = read_artifact(full, "answers").cache_key
    (parts,) = out.parent.glob(f".{out.name}.ckpt-*")
    assert parts.name.endswith(key[:16])  # named by the run's cache key
    assert len(list(parts.glob("*.parquet"))) == 2

    again: list[str] = []
    summary = stage.run(frames, out, cfg, lvlm=lvlm, on_video=again.append)
    assert again == ["v2", "v3", "v4"]  # finished videos are not asked again
    assert summary.resumed_videos == 2
    assert not parts.exists()
    a = read_artifact(full, "answers")
    b = read_artifact(out, "answers")
    assert b.cache_key == a.cache_key
    assert b.table.equals(a.table)


def test_zeal_queries_run_the_vision_tower_once_per_frame(tmp_path):
    """Every query about a chunk of frames goes to the backend in one call: one vision run per
    frame whatever the number of questions, the same answers as the model's own forward, and
    chunks (`units_per_call`) that never change the rows or their order."""
    from zsar_cli.stages.query_lvlm import Query, _frames, answer_video, units_per_call

    lvlm = load_lvlm(MODEL, device="cpu", batch_size=2)
    path = make_frames(tmp_path / "f.parquet", ["a red circle"], frames_per_video=9)
    video = read_artifact(path, "frames").table
    queries = [
        Query(label, kind, ZEAL_PROMPT.format(label=label, question=question))
        for label in ("a red circle", "a blue square")
        for kind, question in (("start", "Is it appearing?"), ("end", "Is it leaving?"))
    ]
    cfg = QueryConfig(question="?", batch_size=2).validated()
    assert units_per_call(cfg) == 8 < len(_frames(video))  # two chunks
    reused = answer_video(lvlm, video, "jpeg", queries, [], cfg)
    assert lvlm.features.vision_runs == 9
    lvlm.reuse = False
    plain = answer_video(lvlm, video, "jpeg", queries, [], cfg)
    assert reused.num_rows == plain.num_rows == 9 * 4
    for name in ("frame_index", "label", "query_kind", "question"):
        assert reused.column(name).to_pylist() == plain.column(name).to_pylist()
    np.testing.assert_allclose(
        reused.column("p_yes").to_numpy(), plain.column("p_yes").to_numpy(), atol=1e-5
    )
    assert reused.column("frame_index").to_pylist()[:5] == [0, 0, 0, 0, 10]
