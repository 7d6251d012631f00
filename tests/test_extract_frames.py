"""Library tests of video.py and the extract-frames stage against ffprobe's own frame times.

The comparisons with ffprobe (and with the ffmpeg program's rotated decode) need the programs
(marker `ffmpeg`); zsar's own decoding, the ffmpeg decoder aside, does not.
"""

from __future__ import annotations

import itertools
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from tests.conftest import DECODERS, make_clip
from zsar_cli.artifacts import read_artifact
from zsar_cli.errors import ConfigError, InputError, VideoError
from zsar_cli.images import decode_image
from zsar_cli.stages.extract_frames import (
    ExtractConfig,
    VideoInput,
    decode_frames,
    resolve_inputs,
    run,
)
from zsar_cli.video import SamplingPlan, decode, plan_sampling, probe


def ffprobe_times(path: Path) -> np.ndarray:
    """Every decoded frame's presentation time as ffprobe -show_frames reports it."""
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "frame=pts_time,best_effort_timestamp_time",
            "-of",
            "csv=p=0",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    times = []
    for line in out.split():
        fields = [f for f in line.split(",") if f and f != "N/A"]
        if fields:  # a frame flushed out of an AVI's B-frame delay may have no time at all
            times.append(float(fields[0]))
    return np.sort(np.asarray(times))


def check_against_ffprobe(path: Path, config: ExtractConfig) -> list:
    """Extracted timestamps are real frame pts (±1 ms) and frame_index is the frame's rank."""
    truth = ffprobe_times(path)
    frames = list(decode_frames(VideoInput(path, path.stem), config))
    assert frames
    for f in frames:
        nearest = int(np.argmin(np.abs(truth - f.timestamp)))
        assert abs(truth[nearest] - f.timestamp) <= 1e-3, (f.timestamp, truth[nearest])
        assert f.frame_index == nearest
    return frames


def first_at_or_after(truth: np.ndarray, target: float) -> float:
    return float(truth[np.searchsorted(truth, target - 1e-6)])


AWKWARD = {
    "ntsc_29.97.mp4": dict(rate="30000/1001"),
    "offset_start.mp4": dict(extra_output=["-pix_fmt", "yuv420p", "-output_ts_offset", "2.5"]),
    "vfr.mp4": dict(
        rate="25",
        extra_output=[
            "-vf",
            "setpts='(N+floor(N/10)*4)/25/TB'",
            "-fps_mode",
            "vfr",
            "-pix_fmt",
            "yuv420p",
        ],
    ),
    "mpeg4.avi": dict(extra_output=["-c:v", "mpeg4", "-q:v", "5"]),
    # An AVI stores no presentation times: with B-frames, frames get the best-effort
    # timestamps ffmpeg and ffprobe report.
    "mpeg4_bframes.avi": dict(extra_output=["-c:v", "mpeg4", "-bf", "2", "-q:v", "5"]),
    "h264.mkv": dict(extra_output=["-c:v", "libx264", "-pix_fmt", "yuv420p"]),
    "h264.ts": dict(extra_output=["-c:v", "libx264", "-pix_fmt", "yuv420p", "-f", "mpegts"]),
    "vp9.webm": dict(
        extra_output=[
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-b:v",
            "200k",
        ]
    ),
    "anim.gif": dict(rate="10"),
    "odd_161x97.mkv": dict(extra_output=["-vf", "scale=161:97", "-c:v", "ffv1"]),
}


@pytest.fixture(scope="module")
def awkward_clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("awkward")
    return {name: make_clip(root / name, duration=3.0, **kw) for name, kw in AWKWARD.items()}


def known_limit(name: str, decoder: str) -> None:
    if name == "mpeg4_bframes.avi" and decoder == "ffmpeg":
        # The ffmpeg program path numbers frames from the stream start; this AVI's first frame
        # comes one frame later (decoder delay), so its frame_index is one too high.
        pytest.xfail("--decoder ffmpeg: frame_index of an AVI with B-frames")


@pytest.mark.ffmpeg  # ffprobe is the reference
@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("name", list(AWKWARD))
def test_fps_sampling_matches_ffprobe(awkward_clips, name, decoder):
    known_limit(name, decoder)
    path = awkward_clips[name]
    info = probe(path, decoder)
    frames = check_against_ffprobe(path, ExtractConfig(fps=2, decoder=decoder))
    truth = ffprobe_times(path)
    # The rule: the first decoded frame at or after each 1/F tick from the first frame.
    ticks = [info.start_time + k / 2 for k in range(int(np.floor(info.duration * 2 + 1e-9)))]
    expected = sorted({first_at_or_after(truth, t) for t in ticks if t <= truth[-1]})
    assert [round(f.timestamp, 3) for f in frames] == [round(t, 3) for t in expected]


@pytest.mark.ffmpeg  # ffprobe is the reference
@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("name", list(AWKWARD))
def test_uniform_sampling_matches_ffprobe(awkward_clips, name, decoder):
    known_limit(name, decoder)
    path = awkward_clips[name]
    frames = check_against_ffprobe(path, ExtractConfig(num_frames=5, decoder=decoder))
    assert len(frames) == 5
    assert all(b.timestamp > a.timestamp for a, b in itertools.pairwise(frames))


@pytest.mark.ffmpeg  # ffprobe is the reference
@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("name", ["vfr.mp4", "h264.mkv", "vp9.webm", "anim.gif", "h264.ts"])
def test_all_frames_equals_ffprobe_frame_list(awkward_clips, decoder, name):
    # (mkv, webm, ts and gif also read their tail first, to compare with the claimed duration)
    path = awkward_clips[name]
    config = ExtractConfig(all_frames=True, decoder=decoder)
    frames = list(decode_frames(VideoInput(path, "v"), config))
    truth = ffprobe_times(path)
    np.testing.assert_allclose([f.timestamp for f in frames], truth, atol=1e-3)
    assert [f.frame_index for f in frames] == list(range(len(truth)))


@pytest.mark.parametrize("decoder", DECODERS)
def test_offset_start_and_vfr_are_detected(awkward_clips, decoder):
    assert probe(awkward_clips["offset_start.mp4"], decoder).start_time == pytest.approx(
        2.5, abs=0.01
    )
    assert probe(awkward_clips["vfr.mp4"], decoder).variable_frame_rate
    assert not probe(awkward_clips["ntsc_29.97.mp4"], decoder).variable_frame_rate
    assert probe(awkward_clips["ntsc_29.97.mp4"], decoder).fps == pytest.approx(29.97, abs=0.01)


@pytest.mark.parametrize("decoder", DECODERS)
def test_seek_and_sequential_paths_pick_the_same_frames(awkward_clips, decoder):
    path = awkward_clips["ntsc_29.97.mp4"]
    info = probe(path)
    seq = plan_sampling(info, num_frames=4, seek_min_gap=1e9)
    seek = plan_sampling(info, num_frames=4, seek_min_gap=0.0)
    assert (seq.mode, seek.mode) == ("grid", "seek")
    a = list(decode(info, seq, decoder=decoder))
    b = list(decode(info, seek, decoder=decoder))
    assert [round(t, 4) for t, _ in a] == [round(t, 4) for t, _ in b]
    for (_, x), (_, y) in zip(a, b, strict=True):
        assert np.abs(x.astype(int) - y.astype(int)).mean() < 1.0


@pytest.mark.ffmpeg  # the program writes the rotation and decodes the reference
@pytest.mark.parametrize("decoder", DECODERS)
def test_rotated_video_is_display_oriented(tmp_path, decoder):
    base = make_clip(tmp_path / "base.mp4", duration=1.0, size="160x96")
    rotated = tmp_path / "rot.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-i",
            str(base),
            "-c",
            "copy",
            "-metadata:s:v:0",
            "rotate=90",
            str(rotated),
        ],
        check=True,
    )
    info = probe(rotated, decoder)
    assert info.rotation in (90, 270) and (info.width, info.height) == (96, 160)
    config = ExtractConfig(num_frames=1, decoder=decoder)
    frames = list(decode_frames(VideoInput(rotated, "r"), config))
    assert frames[0].rgb.shape == (160, 96, 3)
    # Same pixels as ffmpeg's own autorotated decode of that frame.
    ref = subprocess.run(
        [
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-copyts",
            "-i",
            str(rotated),
            "-vf",
            f"select='gte(t,{frames[0].timestamp - 1e-4})'",
            "-frames:v",
            "1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
        capture_output=True,
        check=True,
    ).stdout
    ref_img = np.frombuffer(ref, np.uint8).reshape(160, 96, 3)
    assert np.abs(ref_img.astype(int) - frames[0].rgb.astype(int)).mean() < 1.0


@pytest.mark.parametrize("decoder", DECODERS)
def test_size_scales_shorter_side_while_decoding(awkward_clips, decoder):
    config = ExtractConfig(num_frames=2, size=60, decoder=decoder)
    frames = list(decode_frames(VideoInput(awkward_clips["h264.mkv"], "h"), config))
    assert frames[0].rgb.shape == (60, 80, 3)  # 160x120 → 80x60


def test_window_start_end(awkward_clips):
    path = awkward_clips["offset_start.mp4"]
    frames = list(decode_frames(VideoInput(path, "o"), ExtractConfig(fps=4, start=1.0, end=2.0)))
    ts = [f.timestamp - 2.5 for f in frames]
    assert ts[0] == pytest.approx(1.0, abs=0.041) and ts[-1] < 2.0
    assert len(frames) == 4


def test_segments_assign_reflection_paths(awkward_clips):
    frames = list(
        decode_frames(
            VideoInput(awkward_clips["h264.mkv"], "s"),
            ExtractConfig(segments=3, frames_per_segment=4),
        )
    )
    assert [f.segment for f in frames] == [0] * 4 + [1] * 4 + [2] * 4


def test_sampling_plan_is_pure_and_checks_length(awkward_clips):
    info = probe(awkward_clips["h264.mkv"])  # 3 s at 25 fps = 75 frames
    plan = plan_sampling(info, num_frames=3)
    assert isinstance(plan, SamplingPlan)
    assert plan.targets() == pytest.approx([0.5, 1.5, 2.5])
    # Fewer frames than asked for: all of them, at most the count asked (issue #16).
    short = plan_sampling(info, num_frames=500)
    assert (short.mode, short.count, short.exact_count) == ("all", 500, True)
    with pytest.raises(VideoError, match="empty time window"):
        plan_sampling(info, fps=1, start=10)


def test_config_validation():
    with pytest.raises(ConfigError, match="one sampling mode"):
        ExtractConfig(num_frames=4, fps=1).validated()
    with pytest.raises(ConfigError, match="go together"):
        ExtractConfig(segments=4).validated()
    with pytest.raises(ConfigError, match="image-format"):
        ExtractConfig(image_format="webp").validated()
    assert ExtractConfig().validated().num_frames == 8


@pytest.mark.parametrize("fmt", ["jpeg", "png", "raw"])
def test_image_formats_round_trip(awkward_clips, tmp_path, fmt):
    path = awkward_clips["h264.mkv"]
    out = tmp_path / f"{fmt}.parquet"
    run([path], out, ExtractConfig(num_frames=2, image_format=fmt))
    art = read_artifact(out, "frames")
    assert art.meta.extra["image_encoding"] == fmt
    row = art.table.slice(0, 1).to_pylist()[0]
    img = decode_image(row["image"], fmt, row["width"], row["height"])
    ref = next(iter(decode_frames(VideoInput(path, "x"), ExtractConfig(num_frames=2)))).rgb
    tolerance = 8.0 if fmt == "jpeg" else 0.0  # testsrc2 is a JPEG worst case
    assert np.abs(img.astype(int) - ref.astype(int)).mean() <= tolerance


def test_resolve_inputs_folders_lists_and_ids(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    make_clip(tmp_path / "a" / "clip.mp4", duration=0.5)
    make_clip(tmp_path / "b" / "clip.mp4", duration=0.5)
    (tmp_path / "a" / "notes.md").write_text("not a video")
    listing = tmp_path / "list.csv"
    listing.write_text("video,label\na/clip.mp4,jumping\n# comment\n\nb/clip.mp4,\n")
    from_folder = resolve_inputs([tmp_path])
    assert [v.video_id for v in from_folder] == ["a/clip", "b/clip"]
    from_list = resolve_inputs([listing])
    assert [(v.path, v.label) for v in from_list] == [
        (tmp_path / "a" / "clip.mp4", "jumping"),
        (tmp_path / "b" / "clip.mp4", None),
    ]
    with pytest.raises(InputError, match="no such list file"):
        resolve_inputs([tmp_path / "missing.txt"])
    bad = tmp_path / "bad.csv"
    bad.write_text("a.mp4,x,y\n")
    with pytest.raises(InputError, match=r"bad.csv:1: expected"):
        resolve_inputs([bad])


def test_batch_with_a_bad_video_writes_error_row(tmp_path):
    good = make_clip(tmp_path / "good.mp4", duration=1.0)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    summary = run(
        [good, empty, tmp_path / "missing.mp4"],
        tmp_path / "f.parquet",
        ExtractConfig(num_frames=3, workers=2),
    )
    assert (summary.videos, summary.failed, summary.frames) == (3, 2, 3)
    table = read_artifact(tmp_path / "f.parquet", "frames").table
    assert table.column("video_id").to_pylist() == ["good"] * 3 + ["empty", "missing"]
    errors = dict(
        zip(table.column("video_id").to_pylist(), table.column("error").to_pylist(), strict=True)
    )
    assert "empty file" in errors["empty"] and "no such file" in errors["missing"]


def test_workers_give_identical_output(tmp_path):
    clips = [make_clip(tmp_path / f"c{i}.mp4", duration=1.0 + i * 0.3) for i in range(4)]
    one = run(clips, tmp_path / "one.parquet", ExtractConfig(fps=4, workers=1))
    two = run(clips, tmp_path / "two.parquet", ExtractConfig(fps=4, workers=3))
    a = read_artifact(tmp_path / "one.parquet").table
    b = read_artifact(tmp_path / "two.parquet").table
    assert a.equals(b)
    assert one.cache_key == two.cache_key  # workers do not change the content


def test_long_video_streams_in_chunks(tmp_path):
    clip = make_clip(tmp_path / "long.mp4", duration=8.0, rate="25")
    batches = list(
        __import__(
            "zsar_cli.stages.extract_frames", fromlist=["iter_frame_tables"]
        ).iter_frame_tables([VideoInput(clip, "long")], ExtractConfig(all_frames=True))
    )
    assert len(batches) > 1 and all(isinstance(b, pa.Table) for b in batches)
    assert sum(b.num_rows for b in batches) == 200
