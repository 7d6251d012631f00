"""The staged Self-ReS choice route ends in predictions: extract-frames → classify (CLIP) →
select-tokens --shortlist-from → query-lvlm --tokens --mode choice --shortlist-from → predict
gives what `classify --lvlm --self-res` gives in one command, in CLIP order and circular order
(the shipped world models, CliRunner)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zsar_cli.artifacts import read_artifact
from zsar_cli.cli.app import app
from zsar_cli.prompts import DEFAULT_CHOICE_QUESTION
from zsar_cli.synthetic import LABELS, random_object, render_frame, write_video

W, H, FPS, FRAMES = 160, 120, 8, 32
CLIP, LVLM = "builtin:world-clip", "builtin:world-lvlm"
SHORTLIST, BUDGET = "3", "6"
SELF_RES = ["--segments", "2", "--frames-per-segment", "2"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two 4 s clips, each with its object in the second half."""
    root = tmp_path_factory.mktemp("staged")
    rng = np.random.default_rng(1)
    lines = ["video,label"]
    for v in range(2):
        obj = random_object(rng, W, H, label=LABELS[v * 5], max_speed=0.0)
        frames = [render_frame(W, H, [obj] if i >= 12 else [], rng=rng) for i in range(FRAMES)]
        write_video(root / f"clip{v}.mp4", frames, W, H, FPS)
        lines.append(f"clip{v}.mp4,{obj.label}")
    (root / "list.csv").write_text("\n".join(lines) + "\n")
    (root / "labels.txt").write_text("\n".join(LABELS) + "\n")
    return root


def ok(runner, *args):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def rankings(path):
    table = read_artifact(path, "predictions").table.sort_by([("video_id", "ascending")])
    out: dict[str, list[tuple[str, float, int]]] = {}
    for row in table.to_pylist():
        out.setdefault(row["video_id"], []).append((row["label"], row["score"], row["rank"]))
        assert row["error"] is None
    return {vid: sorted(rows, key=lambda r: r[2]) for vid, rows in out.items()}


def test_staged_self_res_choice_equals_classify(runner, world, tmp_path):
    videos, labels = world / "list.csv", world / "labels.txt"
    frames, clip = tmp_path / "frames.parquet", tmp_path / "clip.parquet"
    ok(runner, "extract-frames", videos, *SELF_RES, "--image-format", "raw", "-o", frames)
    ok(runner, "classify", videos, "--labels", labels, "-m", CLIP, "--device", "cpu", "-o", clip)
    # One selection serves every --option-order: it asks the options in CLIP's order.
    tokens = tmp_path / "tokens.parquet"
    ok(runner, "select-tokens", frames, "-o", tokens, "--question", DEFAULT_CHOICE_QUESTION,
       "-m", LVLM, "--device", "cpu", "--budget", BUDGET, "--shortlist-from", clip,
       "--shortlist", SHORTLIST, "--embedding-dtype", "float32")  # fmt: skip
    clip_top = {vid: [r[0] for r in rows[: int(SHORTLIST)]] for vid, rows in rankings(clip).items()}
    for order in ("clip", "circular"):
        one = tmp_path / f"one-{order}.parquet"
        ok(runner, "classify", videos, "--labels", labels, "-m", CLIP, "--device", "cpu",
           "--lvlm", LVLM, "--self-res", *SELF_RES, "--budget", BUDGET, "--shortlist", SHORTLIST,
           "--option-order", order, "-o", one)  # fmt: skip
        answers, staged = (
            tmp_path / f"answers-{order}.parquet",
            tmp_path / f"staged-{order}.parquet",
        )
        ok(runner, "query-lvlm", frames, "--tokens", tokens, "--mode", "choice", "--device", "cpu",
           "--shortlist-from", clip, "--shortlist", SHORTLIST, "--option-order", order,
           "-o", answers)  # fmt: skip
        asked = read_artifact(answers, "answers").table
        orderings = 3 if order == "circular" else 1
        assert asked.num_rows == 2 * int(SHORTLIST) * orderings
        assert sorted(set(asked.column("ordering").to_pylist())) == list(range(orderings))
        ok(runner, "predict", answers, "--shortlist-from", clip, "-o", staged)
        want, got = rankings(one), rankings(staged)
        assert set(want) == set(got) == {"clip0", "clip1"}
        for vid in want:
            assert [r[0] for r in got[vid]] == [r[0] for r in want[vid]]
            np.testing.assert_allclose([r[1] for r in got[vid]], [r[1] for r in want[vid]],
                                       atol=1e-6)  # fmt: skip
            # The LVLM re-ranked the shortlist; the other labels follow in CLIP order at 0.
            assert sorted(r[0] for r in got[vid][:3]) == sorted(clip_top[vid])
            assert sum(r[1] for r in got[vid][:3]) == pytest.approx(1.0)
            assert all(r[1] == 0 for r in got[vid][3:])
        # score reads the staged predictions (true_label kept from CLIP's) as classify's own.
        staged_metrics = json.loads(ok(runner, "score", staged, "--json").stdout)
        one_metrics = json.loads(ok(runner, "score", one, "--json").stdout)
        assert staged_metrics["videos"] == 2 and staged_metrics["error_videos"] == 0
        assert staged_metrics["top1"] == one_metrics["top1"]


def test_predict_refuses_what_it_cannot_rank(runner, world, tmp_path):
    """Yes/no answers are no choice; a shortlist's answers need the predictions they came from."""
    frames = tmp_path / "frames.parquet"
    ok(runner, "extract-frames", world / "list.csv", "--num-frames", "2", "-o", frames)
    yesno = tmp_path / "yesno.parquet"
    ok(runner, "query-lvlm", frames, "-m", LVLM, "--device", "cpu", "--question",
       "Is there any object in this frame?", "-o", yesno)  # fmt: skip
    result = runner.invoke(app, ["predict", str(yesno), "-o", str(tmp_path / "p.parquet")])
    assert result.exit_code == 1 and "--mode choice answers, not yesno" in result.output
    # Choice over every label (no shortlist): predict ranks them all, scores sum to one.
    choice = tmp_path / "choice.parquet"
    ok(runner, "query-lvlm", frames, "-m", LVLM, "--device", "cpu", "--mode", "choice",
       "--labels", world / "labels.txt", "--option-order", "clip", "--level", "clip",
       "-o", choice)  # fmt: skip
    preds = tmp_path / "p.parquet"
    ok(runner, "predict", choice, "-o", preds)
    for rows in rankings(preds).values():
        assert [r[0] for r in rows] and len(rows) == len(LABELS)
        assert sum(r[1] for r in rows) == pytest.approx(1.0)
