"""`zsar select-tokens`, `zsar query-lvlm --tokens` and `zsar classify --lvlm [--self-res]` on
world videos written with the synthetic module (CliRunner, the shipped world models)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from zsar_cli.artifacts import read_artifact
from zsar_cli.cli.app import app
from zsar_cli.synthetic import LABELS, random_object, render_frame, write_video

W, H, FPS, FRAMES = 160, 120, 8, 64
LVLM = "builtin:world-lvlm"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Three 8 s clips, each with its object on 6 consecutive frames of the second half."""
    root = tmp_path_factory.mktemp("selfres")
    rng = np.random.default_rng(0)
    lines = ["video,label"]
    for v in range(3):
        obj = random_object(rng, W, H, label=LABELS[v * 4], max_speed=0.0)
        frames = [render_frame(W, H, [obj] if 40 <= i < 46 else [], rng=rng) for i in range(FRAMES)]
        write_video(root / f"clip{v}.mp4", frames, W, H, FPS)
        lines.append(f"clip{v}.mp4,{obj.label}")
    (root / "list.csv").write_text("\n".join(lines) + "\n")
    (root / "labels.txt").write_text("\n".join(LABELS) + "\n")
    return root


@pytest.fixture(scope="module")
def frames(world, tmp_path_factory):
    from typer.testing import CliRunner

    out = tmp_path_factory.mktemp("frames") / "frames.parquet"
    result = CliRunner().invoke(
        app,
        [
            "extract-frames",
            str(world / "list.csv"),
            "--segments",
            "2",
            "--frames-per-segment",
            "4",
            "-o",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    return out


def select(runner, frames, out, *extra):
    return runner.invoke(
        app,
        [
            "select-tokens",
            str(frames),
            "-o",
            str(out),
            "--question",
            "Is there any object in this frame?",
            "-m",
            LVLM,
            "--device",
            "cpu",
            *extra,
        ],
    )


def test_select_then_answer_from_tokens(runner, frames, tmp_path):
    tokens = tmp_path / "tokens.parquet"
    result = select(runner, frames, tokens, "--budget", "6", "--scorer", "similarity")
    assert result.exit_code == 0, result.output
    art = read_artifact(tokens, "tokens")
    table = art.table
    assert table.num_rows == 3 * 6
    assert art.meta.extra_json("scorer") == "similarity"
    for vid in ("clip0", "clip1", "clip2"):
        rows = table.filter(table.column("video_id").to_numpy(zero_copy_only=False) == vid)
        assert rows.column("segment").to_pylist().count(0) == 3  # 6 split over 2 paths
        frames_kept = rows.column("frame_index").to_pylist()
        assert frames_kept == sorted(frames_kept)
    assert table.schema.field("embedding").type.value_type == pa.float16()
    answers = tmp_path / "answers.parquet"
    result = runner.invoke(
        app,
        [
            "query-lvlm",
            str(frames),
            "--tokens",
            str(tokens),
            "--question",
            "Is there any object in this frame?",
            "-m",
            LVLM,
            "--device",
            "cpu",
            "-o",
            str(answers),
        ],
    )
    assert result.exit_code == 0, result.output
    ans = read_artifact(answers, "answers").table
    assert ans.num_rows == 3
    p = np.array(ans.column("p_yes").to_pylist())
    assert np.all((p >= 0) & (p <= 1))
    assert ans.column("frame_index").to_pylist() == [None] * 3


def test_all_tokens_parity_with_clip_level_query(runner, frames, tmp_path, world):
    tokens = tmp_path / "tokens.parquet"
    # Budget = 8 frames × the model's tokens per frame (what the processor makes of one frame).
    from zsar_cli.backends import load_lvlm

    lvlm = load_lvlm(LVLM, device="cpu")
    stand_in = np.zeros((H, W, 3), np.uint8)
    per_frame = int(lvlm.build_inputs([[stand_in]], ["x"]).image_token_mask.sum())
    result = select(
        runner, frames, tokens, "--budget", str(8 * per_frame), "--embedding-dtype", "float32"
    )
    assert result.exit_code == 0, result.output
    common = ["-m", LVLM, "--device", "cpu", "--question", "Is there any object in this frame?"]
    from_tokens, plain = tmp_path / "a.parquet", tmp_path / "b.parquet"
    r1 = runner.invoke(
        app, ["query-lvlm", str(frames), "--tokens", str(tokens), "-o", str(from_tokens), *common]
    )
    assert r1.exit_code == 0, r1.output
    # Plain path: every frame of the video in one prompt (one clip per video, not per segment).

    table = read_artifact(frames, "frames").table
    no_segments = table.set_column(
        table.schema.get_field_index("segment"),
        "segment",
        pa.array([-1] * table.num_rows, pa.int32()),
    )
    from zsar_cli.artifacts import write_artifact

    flat = tmp_path / "flat.parquet"
    meta = read_artifact(frames, "frames").meta
    write_artifact(no_segments, flat, "frames", meta.config, [], {"image_encoding": "jpeg"})
    r2 = runner.invoke(
        app,
        [
            "query-lvlm",
            str(flat),
            "--level",
            "clip",
            "--max-frames",
            "8",
            "-o",
            str(plain),
            *common,
        ],
    )
    assert r2.exit_code == 0, r2.output
    a = read_artifact(from_tokens).table.sort_by("video_id").column("p_yes").to_numpy()
    b = read_artifact(plain).table.sort_by("video_id").column("p_yes").to_numpy()
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_bad_inputs_have_clear_messages(runner, frames, tmp_path):
    out = tmp_path / "t.parquet"
    result = select(runner, frames, out, "--budget", "100000")
    assert result.exit_code == 1
    assert "--budget asks for 100000 tokens but only" in result.output
    # (the run above wrote error rows to `out`; other settings need another output or --force)
    result = select(runner, frames, tmp_path / "s.parquet", "--segments", "3")
    assert result.exit_code == 1
    assert "--segments 3 does not divide its 8 frames" in result.output
    result = select(runner, frames, tmp_path / "g.parquet", "--scorer", "gaze")
    assert result.exit_code == 2 and "'gaze' is not one of 'attention'" in result.output
    result = select(runner, frames, tmp_path / "l.parquet", "--layers", "1,x")
    assert result.exit_code == 1 and "--layers" in result.output
    # Tokens from other frames are refused by the final pass.
    assert select(runner, frames, out, "--budget", "4", "--force").exit_code == 0
    other = tmp_path / "other.parquet"
    from zsar_cli.artifacts import write_artifact

    art = read_artifact(frames, "frames")
    write_artifact(art.table, other, "frames", {"other": 1}, [], {"image_encoding": "jpeg"})
    result = runner.invoke(
        app,
        [
            "query-lvlm",
            str(other),
            "--tokens",
            str(out),
            "--question",
            "Is it?",
            "-o",
            str(tmp_path / "a.parquet"),
            "-m",
            LVLM,
        ],
    )
    assert result.exit_code == 1 and "were not selected from" in result.output


@pytest.mark.parametrize("self_res", [False, True])
def test_classify_with_lvlm_shortlist(runner, world, tmp_path, self_res):
    out = tmp_path / "pred.parquet"
    args = [
        "classify",
        str(world / "list.csv"),
        "--labels",
        str(world / "labels.txt"),
        "-m",
        "builtin:world-clip",
        "--device",
        "cpu",
        "--lvlm",
        LVLM,
        "--shortlist",
        "3",
        "-o",
        str(out),
    ]
    if self_res:
        args.append("--self-res")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    table = read_artifact(out, "predictions").table
    assert table.num_rows == 3 * len(LABELS)
    for vid in ("clip0", "clip1", "clip2"):
        rows = table.filter(table.column("video_id").to_numpy(zero_copy_only=False) == vid)
        scores = rows.sort_by("rank").column("score").to_numpy()
        assert scores[:3].sum() == pytest.approx(1.0)  # the LVLM's choice among 3
        assert np.all(np.diff(scores[:3]) <= 0) and np.all(scores[3:] == 0)
    scored = runner.invoke(app, ["score", str(out), "--json"])
    assert scored.exit_code == 0, scored.output


def test_shards_skip_force_and_resume(runner, frames, tmp_path):
    """The per-video stage conventions: two shards merge to the full run, a rerun with the same
    settings is skipped, other settings are refused without --force, a kill resumes."""
    from zsar_cli.stages import select_tokens as stage
    from zsar_cli.stages.select_tokens_config import SelectTokensConfig

    full = tmp_path / "full.parquet"
    assert select(runner, frames, full, "--budget", "6").exit_code == 0
    again = select(runner, frames, full, "--budget", "6")
    assert again.exit_code == 0 and "up to date" in again.output
    other = select(runner, frames, full, "--budget", "4")
    assert other.exit_code != 0 and "--force" in other.output
    assert select(runner, frames, full, "--budget", "4", "--force").exit_code == 0
    assert read_artifact(full, "tokens").table.num_rows == 3 * 4

    folder = tmp_path / "sharded"
    for i in (0, 1):
        result = select(runner, frames, folder, "--budget", "4", "--shard", f"{i}/2")
        assert result.exit_code == 0, result.output
    merged = read_artifact(folder, "tokens").table
    assert merged.equals(read_artifact(full, "tokens").table)

    class Interrupt(Exception):
        pass

    seen: list[str] = []

    def stop_after_two(video_id: str, error: str | None) -> None:
        seen.append(video_id)
        if len(seen) == 2:
            raise Interrupt

    cfg = SelectTokensConfig(
        model=LVLM, question="Is there any object in this frame?", budget=4, device="cpu"
    )
    out = tmp_path / "resumed.parquet"
    with pytest.raises(Interrupt):
        stage.run(frames, out, cfg, on_video=stop_after_two)
    assert not out.exists()
    asked: list[str] = []
    summary = stage.run(frames, out, cfg, on_video=lambda v, e: asked.append(v))
    assert asked == ["clip2"] and summary.resumed_videos == 2
    assert read_artifact(out, "tokens").table.equals(read_artifact(full, "tokens").table)
    assert not list(tmp_path.glob(".resumed.parquet.ckpt-*"))


def test_answers_from_tokens_shard_skip_force_and_model(runner, frames, tmp_path):
    """query-lvlm --tokens runs through the shared runner: --shard writes parts that merge into
    the unsharded answers, a rerun is up to date, other settings are refused unless --force;
    and typing the tokens' own model explicitly is accepted (compared resolved)."""
    tokens = tmp_path / "tokens.parquet"
    assert select(runner, frames, tokens, "--budget", "6").exit_code == 0
    ask = ["query-lvlm", str(frames), "--tokens", str(tokens), "--device", "cpu"]
    question = ["--question", "Is there any object in this frame?"]
    whole = tmp_path / "answers.parquet"
    res = runner.invoke(app, [*ask, *question, "-o", str(whole)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, [*ask, *question, "-m", LVLM, "-o", str(whole)])
    assert res.exit_code == 0 and "up to date" in res.output, res.output
    parts = tmp_path / "parts"
    for index in (0, 1):
        res = runner.invoke(app, [*ask, *question, "-o", str(parts), "--shard", f"{index}/2"])
        assert res.exit_code == 0, res.output
    merged = tmp_path / "merged.parquet"
    assert runner.invoke(app, ["merge", str(parts), "-o", str(merged)]).exit_code == 0
    assert read_artifact(merged).table.equals(read_artifact(whole).table)
    other = ["--question", "Is it red?"]
    res = runner.invoke(app, [*ask, *other, "-o", str(whole)])
    assert res.exit_code == 1 and "--force" in res.output, res.output
    res = runner.invoke(app, [*ask, *other, "-o", str(whole), "--force"])
    assert res.exit_code == 0, res.output
    assert read_artifact(whole).table.column("question").to_pylist() == ["Is it red?"] * 3
