"""Per-row time spans in list files, Kinetics CSVs as inputs and ground truth, and the frame counts
the frames artifact records and later stages carry (issue 15 items 5a, 6a).

Clips are generated from lavfi sources at known rates (tests/clips.py), so the expected timestamps,
frame numbers and frame counts follow from the rate alone; both decoders are checked.
"""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest

from tests.conftest import DECODERS, make_clip
from zsar_cli.artifacts import build_table, read_artifact, write_artifact
from zsar_cli.cli.app import app
from zsar_cli.datasets import detect_gt_format, load_ground_truth, read_kinetics
from zsar_cli.datasets.kinetics import read_kinetics_rows
from zsar_cli.errors import InputError
from zsar_cli.stages.extract_frames import ExtractConfig, inputs_fingerprint, resolve_inputs, run

RATE = 25


def rows_by_video(path):
    table = read_artifact(path, "frames").table
    out: dict[str, list[dict]] = {}
    for row in table.drop_columns(["image"]).to_pylist():
        out.setdefault(row["video_id"], []).append(row)
    return out


def first_frames_at_or_after(targets, rate=RATE):
    """The pts of the first frame at or after each target, for a constant-rate clip from 0."""
    return [math.ceil(t * rate - 1e-6) / rate for t in targets]


@pytest.fixture
def spans_list(tmp_path):
    make_clip(tmp_path / "clip.mp4", duration=4.0, rate=str(RATE))
    listing = tmp_path / "spans.csv"
    listing.write_text("video,label,start,end\nclip.mp4,jumping,1,2.5\nclip.mp4,,2,3\n")
    return listing


@pytest.mark.parametrize("decoder", DECODERS)
def test_list_spans_sample_inside_each_span_with_absolute_times(tmp_path, spans_list, decoder):
    videos = resolve_inputs([spans_list])
    assert [(v.video_id, v.label, v.span) for v in videos] == [
        ("clip_000001_000002.5", "jumping", (1.0, 2.5)),
        ("clip_000002_000003", None, (2.0, 3.0)),
    ]
    out = tmp_path / f"{decoder}.parquet"
    summary = run([spans_list], out, ExtractConfig(num_frames=4, decoder=decoder))
    assert (summary.videos, summary.failed, summary.frames) == (2, 0, 8)
    rows = rows_by_video(out)
    for vid, (start, end) in (("clip_000001_000002.5", (1, 2.5)), ("clip_000002_000003", (2, 3))):
        got = [r["timestamp"] for r in rows[vid]]
        step = (end - start) / 4
        expected = first_frames_at_or_after([start + step / 2 + k * step for k in range(4)])
        # Absolute presentation times of the video (not shifted to the span), inside the span.
        assert got == pytest.approx(expected, abs=1e-6)
        assert all(start <= t < end for t in got)
        assert [r["frame_index"] for r in rows[vid]] == [round(t * RATE) for t in expected]
        assert {(r["span_start"], r["span_end"]) for r in rows[vid]} == {(start, end)}
        # The whole video's frame facts, whatever the span.
        assert {(r["frame_count"], r["fps"]) for r in rows[vid]} == {(4 * RATE, RATE)}


@pytest.mark.parametrize("decoder", DECODERS)
def test_fps_and_segments_over_a_span(tmp_path, spans_list, decoder):
    out = tmp_path / "fps.parquet"
    run([spans_list], out, ExtractConfig(fps=2, decoder=decoder))
    rows = rows_by_video(out)
    # The first frame at or after each 1/2-s tick from the span start (1.5 s falls between
    # frames of a 25 fps clip: 1.52).
    got = [r["timestamp"] for r in rows["clip_000001_000002.5"]]
    assert got == pytest.approx(first_frames_at_or_after([1.0, 1.5, 2.0]), abs=1e-6)
    got = [r["timestamp"] for r in rows["clip_000002_000003"]]
    assert got == pytest.approx(first_frames_at_or_after([2.0, 2.5]), abs=1e-6)
    out = tmp_path / "seg.parquet"
    run([spans_list], out, ExtractConfig(segments=2, frames_per_segment=2, decoder=decoder))
    rows = rows_by_video(out)["clip_000002_000003"]
    assert [r["segment"] for r in rows] == [0, 0, 1, 1]
    expected = first_frames_at_or_after([2.125, 2.375, 2.625, 2.875])
    assert [r["timestamp"] for r in rows] == pytest.approx(expected, abs=1e-6)


def test_start_and_end_narrow_each_span(tmp_path, spans_list):
    out = tmp_path / "narrow.parquet"
    run([spans_list], out, ExtractConfig(num_frames=2, start=1.5, end=2.8))
    rows = rows_by_video(out)
    for vid, (lo, hi) in (("clip_000001_000002.5", (1.5, 2.5)), ("clip_000002_000003", (2, 2.8))):
        step = (hi - lo) / 2
        expected = first_frames_at_or_after([lo + step / 2, lo + 1.5 * step])
        assert [r["timestamp"] for r in rows[vid]] == pytest.approx(expected, abs=1e-6)


def test_span_errors_are_rows_and_bad_numbers_name_the_line(tmp_path):
    make_clip(tmp_path / "clip.mp4", duration=2.0, rate=str(RATE))
    listing = tmp_path / "list.csv"
    listing.write_text("clip.mp4,a,0.5,1\nclip.mp4,b,1.5,1.5\nclip.mp4,c,5,6\nclip.mp4,d,1,9\n")
    out = tmp_path / "f.parquet"
    summary = run([listing], out, ExtractConfig(num_frames=2))
    assert (summary.videos, summary.failed, summary.frames) == (4, 3, 2)
    errors = dict(summary.errors)
    assert (
        f"{listing}:2: span end 1.5 s is not after its start 1.5 s"
        in errors["clip_000001.5_000001.5"]
    )
    assert "starts after the video ends" in errors["clip_000005_000006"]
    assert "ends after the video does" in errors["clip_000001_000009"]
    good = rows_by_video(out)["clip_000000.5_000001"]
    assert all(0.5 <= r["timestamp"] < 1 for r in good)
    bad = tmp_path / "bad.csv"
    bad.write_text("clip.mp4,a,0,1\nclip.mp4,a,zero,1\n")
    with pytest.raises(InputError, match=r"bad.csv:2: start 'zero' is not a number"):
        resolve_inputs([bad])
    three = tmp_path / "three.csv"
    three.write_text("clip.mp4,a,0\n")
    with pytest.raises(InputError, match=r"three.csv:1: expected .* got 3 fields"):
        resolve_inputs([three])


def test_spans_enter_the_inputs_fingerprint(tmp_path):
    make_clip(tmp_path / "clip.mp4", duration=1.0)
    a, b, plain = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "plain.csv"
    a.write_text("clip.mp4,x,0,0.5\n")
    b.write_text("clip.mp4,x,0,0.75\n")
    plain.write_text("clip.mp4,x\n")
    keys = {inputs_fingerprint(resolve_inputs([p])) for p in (a, b, plain)}
    assert len(keys) == 3
    # Span-less inputs keep the key they had before spans existed (path|size|mtime|label).
    st = (tmp_path / "clip.mp4").stat()
    ident = f"{(tmp_path / 'clip.mp4').resolve()}|{st.st_size}|{st.st_mtime_ns}|x"
    old_key = "videos:" + hashlib.sha256(ident.encode()).hexdigest()[:32]
    assert inputs_fingerprint(resolve_inputs([plain])) == old_key


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize(("name", "rate", "duration"), [("c.mp4", 30, 2.0), ("c.mkv", 24, 1.5)])
def test_frame_count_is_the_number_of_frames_encoded(tmp_path, decoder, name, rate, duration):
    # mkv stores no frame count: duration x average rate stands in for it.
    path = make_clip(tmp_path / name, duration=duration, rate=str(rate))
    out = tmp_path / "all.parquet"
    run([path], out, ExtractConfig(all_frames=True, decoder=decoder))
    rows = rows_by_video(out)["c"]
    encoded = round(duration * rate)
    assert len(rows) == encoded
    assert {r["frame_count"] for r in rows} == {encoded}
    assert [r["fps"] for r in rows] == pytest.approx([rate] * encoded)


# ---------------------------------------------------------------------------------------------
# Kinetics

HEADER = "label,youtube_id,time_start,time_end,split"


@pytest.fixture
def kinetics(tmp_path):
    root = tmp_path / "k400" / "val"
    (root / "dancing ballet").mkdir(parents=True)
    (root / "playing_guitar").mkdir()
    make_clip(root / "dancing ballet" / "aaaaaaaaaaa_000010_000020.mp4", duration=1.0)
    make_clip(root / "playing_guitar" / "bbbbbbbbbbb_000003_000013.mkv", duration=1.0)
    make_clip(root / "ccccccccccc.mp4", duration=3.0, rate=str(RATE))  # untrimmed, flat
    csv_file = tmp_path / "k400" / "validate.csv"
    csv_file.write_text(
        f"{HEADER}\n"
        '"dancing ballet",aaaaaaaaaaa,10,20,val\n'
        "playing guitar,bbbbbbbbbbb,3,13,val\n"
        "dancing ballet,ccccccccccc,1,2,val\n"
        "playing guitar,ddddddddddd,0,10,val\n"
    )
    return csv_file, root


IDS = ["aaaaaaaaaaa_000010_000020", "bbbbbbbbbbb_000003_000013", "ccccccccccc_000001_000002"]


def test_kinetics_csv_as_input(runner, tmp_path, kinetics):
    csv_file, root = kinetics
    out = tmp_path / "frames.parquet"
    args = ["extract-frames", str(csv_file), "--root", str(root), "-n", "2", "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "6 frames from 3/4 videos" in result.output
    assert "ddddddddddd_000000_000010 not downloaded" in result.output
    rows = rows_by_video(out)
    assert list(rows) == [*IDS, "ddddddddddd_000000_000010"]
    labels = {vid: {r["label"] for r in rs} for vid, rs in rows.items()}
    assert labels == {
        IDS[0]: {"dancing ballet"},
        IDS[1]: {"playing guitar"},
        IDS[2]: {"dancing ballet"},
        "ddddddddddd_000000_000010": {"playing guitar"},
    }
    assert rows[IDS[1]][0]["path"].endswith("playing_guitar/bbbbbbbbbbb_000003_000013.mkv")
    # The trimmed clips are read whole; the untrimmed video over the row's span, absolute times.
    assert {r["span_start"] for r in rows[IDS[0]]} == {None}
    expected = first_frames_at_or_after([1.25, 1.75])
    assert [r["timestamp"] for r in rows[IDS[2]]] == pytest.approx(expected, abs=1e-6)
    (missing,) = rows["ddddddddddd_000000_000010"]
    assert missing["timestamp"] is None and "not downloaded" in missing["error"]
    # Without --root: the CSV's own folder.
    beside = root / "validate.csv"
    beside.write_text(csv_file.read_text())
    again = tmp_path / "again.parquet"
    result = runner.invoke(app, ["extract-frames", str(beside), "-n", "2", "-o", str(again)])
    assert result.exit_code == 0, result.output
    assert list(rows_by_video(again)) == list(rows)
    assert "6 frames from 3/4 videos" in result.output
    result = runner.invoke(app, ["extract-frames", str(csv_file), "-o", str(tmp_path / "n.pq")])
    assert "0 frames from 0/4 videos" in result.output  # its folder holds none of the clips


def test_kinetics_csv_as_ground_truth(runner, tmp_path, kinetics):
    csv_file, _ = kinetics
    gt = read_kinetics(csv_file)
    assert gt.labels == {
        IDS[0]: "dancing ballet",
        IDS[1]: "playing guitar",
        IDS[2]: "dancing ballet",
        "ddddddddddd_000000_000010": "playing guitar",
    }
    assert gt.classes == ["dancing ballet", "playing guitar"]
    assert detect_gt_format(csv_file) == "kinetics"
    assert load_ground_truth(csv_file)[0] == "kinetics"
    # Predictions keyed by the same ids score against it: 2 of the 4 right at top-1.
    ranked = {
        IDS[0]: ["dancing ballet", "playing guitar"],
        IDS[1]: ["dancing ballet", "playing guitar"],
        IDS[2]: ["dancing ballet", "playing guitar"],
        "ddddddddddd_000000_000010": ["dancing ballet", "playing guitar"],
    }
    cols: dict[str, list] = {k: [] for k in ("video_id", "label", "score", "rank")}
    for vid, labels in ranked.items():
        for r, label in enumerate(labels):
            for k, v in zip(cols, (vid, label, 1.0 - 0.1 * r, r + 1), strict=True):
                cols[k].append(v)
    pred = tmp_path / "pred.parquet"
    write_artifact(build_table("predictions", cols), pred, "predictions", {})
    result = runner.invoke(app, ["score", str(pred), "--gt", str(csv_file), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["top1"] == pytest.approx(0.5)


def test_kinetics_variants_and_errors(tmp_path):
    k600_test = tmp_path / "test.csv"
    k600_test.write_text("youtube_id,time_start,time_end,split\nxyz,0,10,test\n")
    (row,) = read_kinetics_rows(k600_test)
    assert (row.label, row.video_id, row.split) == (None, "xyz_000000_000010", "test")
    with pytest.raises(InputError, match="no labelled rows"):
        read_kinetics(k600_test)
    cc = tmp_path / "cc.csv"
    cc.write_text(f"{HEADER},is_cc\nabseiling,q,4,14,train,0\n")
    assert read_kinetics(cc).labels == {"q_000004_000014": "abseiling"}
    bad = tmp_path / "bad.csv"
    bad.write_text(f"{HEADER}\nabseiling,q,4,14,train\nabseiling,r,four,14,train\n")
    with pytest.raises(InputError, match=r"bad.csv:3: time_start 'four' is not a number"):
        read_kinetics(bad)
    short = tmp_path / "short.csv"
    short.write_text(f"{HEADER}\nabseiling,q,4,14\n")
    with pytest.raises(InputError, match=r"short.csv:2: expected 5 fields, got 4"):
        resolve_inputs([short])


# ---------------------------------------------------------------------------------------------
# frame_count downstream


def test_frame_count_reaches_embeddings_and_frame_scores(runner, tmp_path, spans_list):
    frames, emb = tmp_path / "frames.parquet", tmp_path / "emb.parquet"
    run([spans_list], frames, ExtractConfig(num_frames=3))

    def ok(*args):
        result = runner.invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output

    ok("encode", frames, "-o", emb, "-m", "builtin:world-clip", "--device", "cpu")
    table = read_artifact(emb, "embeddings").table
    assert table.column("frame_count").to_pylist() == [4 * RATE] * 6
    labels = tmp_path / "labels.txt"
    labels.write_text("a red circle\nan empty gray background\n")
    text = tmp_path / "text.parquet"
    ok("encode-text", "-l", labels, "-o", text, "-m", "builtin:world-clip", "--device", "cpu")
    scores = tmp_path / "fs.parquet"
    ok("localize", "--method", "anomaly", "--embeddings", emb, "--text", text,
       "--normal", "an empty gray background", "-o", scores)  # fmt: skip
    table = read_artifact(scores, "frame_scores").table
    assert table.num_rows == 6
    assert set(table.column("frame_count").to_pylist()) == {4 * RATE}
    assert np.isfinite(table.column("score").to_numpy()).all()


def test_classify_reads_a_kinetics_csv_under_root(runner, tmp_path, kinetics):
    """classify takes the CSV and --root as extract-frames does: the same ids, the CSV's labels
    as true labels, and the clip not downloaded as an error row."""
    csv_file, root = kinetics
    labels = tmp_path / "labels.txt"
    labels.write_text("dancing ballet\nplaying guitar\n")
    out = tmp_path / "pred.parquet"
    args = ["classify", str(csv_file), "--root", str(root), "-l", str(labels), "-n", "2"]
    result = runner.invoke(app, [*args, "-m", "fake:enc", "-o", str(out)])
    assert result.exit_code == 0, result.output
    table = read_artifact(out, "predictions").table.to_pylist()
    ids = sorted({r["video_id"] for r in table})
    assert ids == sorted([*IDS, "ddddddddddd_000000_000010"])
    truth = {r["video_id"]: r["true_label"] for r in table if r["true_label"]}
    assert truth[IDS[1]] == "playing guitar"
    (missing,) = [r for r in table if r["video_id"] == "ddddddddddd_000000_000010"]
    assert "not downloaded" in missing["error"]
