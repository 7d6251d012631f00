"""The decoders behind `extract-frames` (issue #17) and what every one of them refuses (#16).

PyAV (in process, the default) and the ffmpeg program keep the same frames with the same real
timestamps; a playlist is not followed, a frame over the pixel cap is an error before any
allocation, a cut-off file and a clip too short for its sampling are reported, not hidden.
The torchcodec reader behind `--decode-device cuda` runs here on torchcodec's CPU decoder; the
NVDEC test itself needs a GPU (marker `gpu`).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DECODERS, make_clip
from zsar_cli.artifacts import read_artifact
from zsar_cli.errors import ConfigError, VideoError
from zsar_cli.sampling import plan_sampling
from zsar_cli.stages.extract_frames import (
    ExtractConfig,
    VideoInput,
    VideoReport,
    decode_frames,
    run,
)
from zsar_cli.video import open_video, probe
from zsar_cli.video_pyav import PyAVReader, decoder_threads

ZSAR = [sys.executable, "-m", "zsar_cli"]


def frames_of(path: Path, config: ExtractConfig, report: VideoReport | None = None) -> list:
    return list(decode_frames(VideoInput(path, path.stem), config, report))


# ---------------------------------------------------------------------------------------------
# Issue #16.1: inputs are plain files, not playlists


@pytest.fixture
def playlists(tmp_path) -> dict[str, Path]:
    private = make_clip(
        tmp_path / "private_recording.ts", duration=2.0, rate="10", extra_output=["-f", "mpegts"]
    )
    hls = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n"
    hls += f"{private.name}\n#EXT-X-ENDLIST\n"
    (tmp_path / "innocent.mp4").write_text(hls)
    (tmp_path / "stream.m3u8").write_text(hls)
    (tmp_path / "list.mp4").write_text(f"ffconcat version 1.0\nfile {private.name}\n")
    return {p.name: p for p in tmp_path.iterdir()}


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("innocent.mp4", "an HLS playlist"),
        ("stream.m3u8", "an HLS playlist"),
        ("list.mp4", "an ffconcat list"),
    ],
)
def test_playlists_are_refused(playlists, decoder, name, kind):
    # Before: ffmpeg followed innocent.mp4 and returned 8 frames of private_recording.ts.
    with pytest.raises(VideoError, match=f"refused: {kind} makes the decoder read other files"):
        frames_of(playlists[name], ExtractConfig(num_frames=4, decoder=decoder))


@pytest.mark.parametrize("decoder", DECODERS)
def test_playlists_are_followed_when_allowed(playlists, decoder):
    config = ExtractConfig(num_frames=4, decoder=decoder, allow_playlists=True)
    frames = frames_of(playlists["stream.m3u8"], config)
    assert len(frames) == 4


def test_a_refused_playlist_is_one_line_and_an_error_row(runner, playlists, tmp_path):
    from zsar_cli.cli.app import app

    out = tmp_path / "f.parquet"
    result = runner.invoke(app, ["extract-frames", str(playlists["innocent.mp4"]), "-o", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "--allow-playlists" in result.output
    table = read_artifact(out, "frames").table
    assert table.num_rows == 1 and "refused" in table.column("error")[0].as_py()


# ---------------------------------------------------------------------------------------------
# Issue #16.2: a cut-off file is reported


@pytest.fixture
def cut_short(tmp_path) -> Path:
    """An 8-s mp4 with its index first and the last 75% of the file cut off."""
    whole = make_clip(
        tmp_path / "whole.mp4",
        duration=8.0,
        extra_output=["-pix_fmt", "yuv420p", "-movflags", "+faststart", "-g", "25"],
    )
    data = whole.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 4])
    return cut


@pytest.mark.parametrize("decoder", DECODERS)
@pytest.mark.parametrize("sampling", [{"fps": 2}, {"num_frames": 8}])
def test_cut_short_file_reports_what_it_holds(cut_short, decoder, sampling):
    report = VideoReport()
    frames = frames_of(cut_short, ExtractConfig(decoder=decoder, **sampling), report)
    assert report.duration == pytest.approx(8.0, abs=0.05)  # what the index claims
    last = max(f.timestamp for f in frames)
    assert last < 4.0  # the frames stop early...
    assert report.decoded_duration is not None
    assert last < report.decoded_duration < 5.0  # ...and the report says so
    assert any("cut short" in w for w in report.warnings)


def test_cut_short_warns_and_strict_fails(runner, cut_short, tmp_path):
    from zsar_cli.cli.app import app

    out = tmp_path / "f.parquet"
    args = ["extract-frames", str(cut_short), "-o", str(out), "--fps", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "warning:" in result.output and "cut short" in result.output
    table = read_artifact(out, "frames").table
    assert table.column("duration").to_pylist() == [pytest.approx(8.0, abs=0.05)] * len(table)
    assert max(table.column("decoded_duration").to_pylist()) < 5.0
    strict = runner.invoke(app, [*args, "--strict"])
    assert strict.exit_code == 1 and "cut short" in strict.output
    # Up to date: the warning comes from the rows, so a skipped rerun still reports it.
    again = runner.invoke(app, [*args, "--strict"])
    assert again.exit_code == 1 and "up to date" in again.output.lower()


def test_whole_files_claim_what_they_hold(tmp_path):
    clip = make_clip(tmp_path / "c.mkv", duration=3.0, extra_output=["-c:v", "libx264"])
    report = VideoReport()
    frames_of(clip, ExtractConfig(fps=2), report)
    assert report.decoded_duration == report.duration and not report.warnings


# ---------------------------------------------------------------------------------------------
# Issue #16.3: a clip too short for its sampling keeps the frames it has


@pytest.mark.parametrize("decoder", DECODERS)
def test_short_clip_keeps_its_distinct_frames(tmp_path, decoder):
    # Before: "only 3 distinct frames for the 4 requested", and no frames at all.
    clip = make_clip(tmp_path / "six.mp4", duration=3.0, rate="2")
    report = VideoReport()
    frames = frames_of(clip, ExtractConfig(num_frames=4, decoder=decoder), report)
    assert len(frames) == 3 and len({f.timestamp for f in frames}) == 3
    assert any("3 distinct frames for the 4 requested" in w for w in report.warnings)


@pytest.mark.parametrize("decoder", DECODERS)
def test_gif_with_fewer_frames_than_asked_gives_all_of_them(tmp_path, decoder):
    # Before: "clip has about 3 frames in the window, fewer than the 8 requested".
    gif = make_clip(tmp_path / "three.gif", duration=0.3, rate="10", extra_output=[])
    report = VideoReport()
    frames = frames_of(gif, ExtractConfig(num_frames=8, decoder=decoder), report)
    assert [f.frame_index for f in frames] == [0, 1, 2]
    assert any("3 distinct frames for the 8 requested" in w for w in report.warnings)


def test_short_clip_cli_warns_and_succeeds(runner, tmp_path):
    from zsar_cli.cli.app import app

    clip = make_clip(tmp_path / "tiny.mp4", duration=0.2, rate="10")
    out = tmp_path / "f.parquet"
    result = runner.invoke(app, ["extract-frames", str(clip), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "2 distinct frames for the 8 requested" in result.output
    assert read_artifact(out, "frames").table.num_rows == 2


# ---------------------------------------------------------------------------------------------
# Issue #16: frames over the pixel cap


def pixel_bomb(path: Path, side: int = 16000) -> Path:
    """A ~40-byte GIF whose one frame claims side x side pixels."""
    gif = b"GIF89a" + struct.pack("<HHBBB", side, side, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    gif += b"\x21\xf9\x04\x00\x0a\x00\x00\x00"
    gif += b"\x2c" + struct.pack("<HHHHB", 0, 0, side, side, 0) + b"\x02\x02\x44\x01\x00\x3b"
    path.write_bytes(gif)
    return path


def test_unknown_codec_is_an_error_row_naming_the_file(runner, tmp_path):
    """A sample entry FFmpeg has no decoder for (issue 16's fuzzing found one: an
    AttributeError, exit 70): one line naming the file, an error row, exit 1."""
    from zsar_cli.cli.app import app

    data = bytearray(make_clip(tmp_path / "ok.mp4", duration=1.0).read_bytes())
    entry = data.index(b"avc1", data.index(b"stsd"))
    data[entry : entry + 4] = b"zzzz"
    video = tmp_path / "odd.mp4"
    video.write_bytes(bytes(data))
    out = tmp_path / "f.parquet"
    result = runner.invoke(app, ["extract-frames", str(video), "-o", str(out)])
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert "internal error" not in result.output
    rows = read_artifact(out).table.to_pylist()
    assert len(rows) == 1 and str(video) in rows[0]["error"]
    assert "no decoder" in rows[0]["error"]


@pytest.mark.parametrize("decoder", DECODERS)
def test_frame_over_the_pixel_cap_is_an_error_without_allocation(tmp_path, decoder):
    # Before: the GIF took 2.4 GB. Measured in a child process by VmHWM, the peak RSS of its own
    # address space (ru_maxrss is kept across fork+exec, so it starts at pytest's own size).
    bomb = pixel_bomb(tmp_path / "bomb.gif")
    code = (
        "import re, sys; from pathlib import Path\n"
        "from zsar_cli.stages.extract_frames import ExtractConfig, VideoInput, decode_frames\n"
        "try:\n"
        f"    list(decode_frames(VideoInput(Path({str(bomb)!r}), 'b'), "
        f"ExtractConfig(decoder={decoder!r})))\n"
        "except Exception as exc:\n"
        "    print(exc)\n"
        "print(re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text())[1])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    message, peak_kb = done.stdout.strip().splitlines()
    assert "16000x16000 (256 MP) exceeds --max-frame-pixels 64000000" in message
    assert int(peak_kb) < 600_000


def test_max_frame_pixels_is_an_option(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", duration=1.0)  # 160x120 = 19200 pixels
    with pytest.raises(VideoError, match="exceeds --max-frame-pixels 10000"):
        frames_of(clip, ExtractConfig(num_frames=2, max_frame_pixels=10_000))
    assert len(frames_of(clip, ExtractConfig(num_frames=2, max_frame_pixels=19_200))) == 2


# ---------------------------------------------------------------------------------------------
# Issue #17: the in-process decoder's shortcuts keep the frames


def test_seeks_and_skipped_frames_change_nothing(tmp_path):
    # libx264's defaults: B-frames (skipped when not wanted) and a keyframe every 10 frames.
    clip = make_clip(
        tmp_path / "b.mp4",
        duration=6.0,
        extra_output=["-c:v", "libx264", "-g", "10", "-pix_fmt", "yuv420p"],
    )
    results = []
    for seeks, skips in [(True, True), (False, False), (True, False), (False, True)]:
        for sampling in ({"num_frames": 5}, {"fps": 3}, {"fps": 0.3}):
            with PyAVReader(clip, seeks=seeks, skips=skips) as reader:
                plan = plan_sampling(reader.info, **sampling)
                results.append((str(sampling), list(reader.frames(plan, 48))))
    by_sampling: dict[str, list] = {}
    for key, frames in results:
        by_sampling.setdefault(key, []).append(frames)
    for runs in by_sampling.values():
        reference = runs[0]
        for other in runs[1:]:
            assert [t for t, _ in other] == [t for t, _ in reference]
            for (_, a), (_, b) in zip(other, reference, strict=True):
                np.testing.assert_array_equal(a, b)


def test_frame_threads_only_from_640x360(tmp_path, monkeypatch):
    """One video at a time: one decoder thread under 640x360 (frame threads gained next to no
    wall time there for a third more CPU, docs/benchmarks.md), one per core from there; with
    several videos at once (threads=1) always one; the frames are the same either way."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2}, raising=False)
    assert decoder_threads(320, 240) == 1
    assert decoder_threads(639, 360) == 1
    assert decoder_threads(640, 360) == 3
    assert decoder_threads(1920, 1080) == 3
    assert decoder_threads(1920, 1080, threads=1) == 1
    small = make_clip(tmp_path / "s.mp4", size="320x240", extra_output=["-c:v", "libx264"])
    large = make_clip(tmp_path / "l.mp4", duration=1.0, size="640x360")
    with PyAVReader(small) as reader:
        assert reader.stream.codec_context.thread_count == 1
    frames = {}
    for threads in (0, 1):
        with PyAVReader(large, threads=threads) as reader:
            assert reader.stream.codec_context.thread_count == (3 if threads == 0 else 1)
            frames[threads] = list(reader.frames(plan_sampling(reader.info, num_frames=4), 64))
    assert [t for t, _ in frames[0]] == [t for t, _ in frames[1]]
    for (_, a), (_, b) in zip(frames[0], frames[1], strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.ffmpeg
@pytest.mark.parametrize("sampling", [{"num_frames": 6}, {"fps": 2}, {"all_frames": True}])
def test_decoders_agree_on_real_clips(realvideos, sampling):
    for name in ("yoga__Ask-Anything.mp4", "ApplyEyeMakeup__mmaction2_test.avi", "asl_book.mkv"):
        path = realvideos / name
        got = {}
        for decoder in ("pyav", "ffmpeg"):
            config = ExtractConfig(decoder=decoder, size=64, **sampling)
            got[decoder] = frames_of(path, config)
        a, b = got["pyav"], got["ffmpeg"]
        assert [f.timestamp for f in a] == pytest.approx([f.timestamp for f in b], abs=1e-9)
        if path.suffix != ".avi":  # see known_limit in test_extract_frames.py
            assert [f.frame_index for f in a] == [f.frame_index for f in b]
        for x, y in zip(a, b, strict=True):
            assert np.abs(x.rgb.astype(int) - y.rgb.astype(int)).mean() < 1.0


@pytest.mark.ffmpeg
def test_probe_agrees_with_ffprobe(realvideos):
    for path in sorted(realvideos.glob("*.*")):
        if path.suffix in (".tsv", ".md"):
            continue
        a, b = probe(path, "pyav"), probe(path, "ffmpeg")
        assert (a.width, a.height, a.rotation, a.codec, a.nb_frames) == (
            b.width,
            b.height,
            b.rotation,
            b.codec,
            b.nb_frames,
        ), path.name
        assert a.fps == pytest.approx(b.fps) and a.duration == pytest.approx(b.duration, abs=1e-5)
        assert a.start_time == pytest.approx(b.start_time, abs=1e-5)


# ---------------------------------------------------------------------------------------------
# Provenance, cache keys, the options


@pytest.mark.ffmpeg
def test_decoder_is_recorded_and_default_cache_key_did_not_move(tmp_path):
    from zsar_cli import provenance

    clip = make_clip(tmp_path / "c.mp4", duration=1.0)
    pyav = run([clip], tmp_path / "a.parquet", ExtractConfig(num_frames=2))
    ffmpeg = run([clip], tmp_path / "b.parquet", ExtractConfig(num_frames=2, decoder="ffmpeg"))
    meta_a = read_artifact(tmp_path / "a.parquet").meta
    meta_b = read_artifact(tmp_path / "b.parquet").meta
    assert meta_a.extra["decoder"].startswith("pyav ") and "FFmpeg" in meta_a.extra["decoder"]
    assert meta_b.extra["decoder"].startswith("ffmpeg ")
    assert pyav.cache_key != ffmpeg.cache_key
    assert "decoder" not in ExtractConfig().validated().provenance()
    version = provenance.__version__
    try:
        provenance.__version__ = "pinned"  # the key pinned in tests/test_cli_config.py
        key = provenance.compute_cache_key("frames", ExtractConfig().validated().provenance())
    finally:
        provenance.__version__ = version
    assert key == "5e00b100a5a5f142974b31bfccfc9fc3"


def test_cuda_decoding_needs_a_gpu_and_says_so(runner, tmp_path):
    from zsar_cli.cli.app import app

    try:
        import torch

        if torch.cuda.is_available():
            pytest.skip("a GPU is present: test_cuda_decoding_matches_the_cpu runs instead")
    except ImportError:
        pass
    clip = make_clip(tmp_path / "c.mp4", duration=1.0)
    out = tmp_path / "f.parquet"
    result = runner.invoke(
        app, ["extract-frames", str(clip), "-o", str(out), "--decode-device", "cuda"]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "--decode-device cuda" in result.output and not out.exists()
    with pytest.raises(ConfigError, match="for the CPU"):
        ExtractConfig(decode_device="cuda", decoder="ffmpeg").validated()


def test_cuda_decoding_without_torchcodec_says_what_to_install(runner, tmp_path, monkeypatch):
    from zsar_cli.cli.app import app

    monkeypatch.setitem(sys.modules, "torchcodec", None)  # import torchcodec → ImportError
    clip = make_clip(tmp_path / "c.mp4", duration=1.0)
    out = tmp_path / "f.parquet"
    result = runner.invoke(
        app, ["extract-frames", str(clip), "-o", str(out), "--decode-device", "cuda"]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "pip install 'zsar[gpu-decode]'" in lines[0]
    assert not out.exists()


def torchcodec_or_skip() -> None:
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401
    except Exception as exc:  # not installed, or no FFmpeg libraries it can load
        pytest.skip(f"torchcodec unavailable: {exc}")


@pytest.mark.parametrize("sampling", [{"num_frames": 5}, {"fps": 2}])
def test_torchcodec_reader_keeps_the_same_frames(tmp_path, sampling):
    """The `--decode-device cuda` reader, on torchcodec's CPU decoder: same frames and times."""
    torchcodec_or_skip()
    from zsar_cli.video_cuda import TorchcodecCudaReader

    clip = make_clip(tmp_path / "c.mp4", duration=3.0, size="160x96")
    for size in (None, 48):
        with TorchcodecCudaReader(clip, device="cpu") as reader:
            plan = plan_sampling(reader.info, **sampling)
            got = list(reader.frames(plan, size))
        with open_video(clip) as reader:
            want = list(reader.frames(plan_sampling(reader.info, **sampling), size))
        assert [t for t, _ in got] == pytest.approx([t for t, _ in want], abs=1e-6)
        # Colour conversion alone agrees closely; torch's antialiased bicubic resize is not
        # swscale's, and testsrc2's sharp edges are the worst case for the difference.
        tolerance = 2.0 if size is None else 10.0
        for (_, a), (_, b) in zip(got, want, strict=True):
            assert a.shape == b.shape
            assert np.abs(a.astype(int) - b.astype(int)).mean() < tolerance


@pytest.mark.gpu
def test_cuda_decoding_matches_the_cpu(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    torchcodec_or_skip()
    clip = make_clip(tmp_path / "c.mp4", duration=3.0)
    cpu = frames_of(clip, ExtractConfig(num_frames=6, size=64))
    gpu = frames_of(clip, ExtractConfig(num_frames=6, size=64, decode_device="cuda"))
    assert [f.timestamp for f in gpu] == pytest.approx([f.timestamp for f in cpu], abs=1e-6)
    assert [f.frame_index for f in gpu] == [f.frame_index for f in cpu]
    for a, b in zip(gpu, cpu, strict=True):
        assert np.abs(a.rgb.astype(int) - b.rgb.astype(int)).mean() < 6.0


# ---------------------------------------------------------------------------------------------
# No ffmpeg program: `pip install` is the whole set-up


@pytest.mark.ffmpeg  # compared with the program's frames
def test_extraction_without_ffmpeg_on_path_equals_the_program(tmp_path):
    clips = [
        make_clip(tmp_path / "a.mp4", duration=2.0),
        make_clip(tmp_path / "b.mkv", duration=2.5, extra_output=["-c:v", "libx264"]),
    ]
    bare = tmp_path / "bin"  # a PATH with no ffmpeg or ffprobe on it
    bare.mkdir()
    env = {**os.environ, "PATH": str(bare), "ZSAR_NO_PROGRESS": "1"}
    args = ["extract-frames", *map(str, clips), "--fps", "2", "--image-format", "png"]
    bundled = subprocess.run(
        [*ZSAR, *args, "-o", str(tmp_path / "bundled.parquet")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bundled.returncode == 0, bundled.stderr
    program = run(
        clips,
        tmp_path / "program.parquet",
        ExtractConfig(fps=2, image_format="png", decoder="ffmpeg"),
    )
    assert program.failed == 0
    a = read_artifact(tmp_path / "bundled.parquet").table.to_pylist()
    b = read_artifact(tmp_path / "program.parquet").table.to_pylist()
    assert [(r["video_id"], r["timestamp"], r["frame_index"]) for r in a] == [
        (r["video_id"], r["timestamp"], r["frame_index"]) for r in b
    ]
    from zsar_cli.images import decode_image

    for x, y in zip(a, b, strict=True):
        ix = decode_image(x["image"], "png", x["width"], x["height"])
        iy = decode_image(y["image"], "png", y["width"], y["height"])
        assert np.abs(ix.astype(int) - iy.astype(int)).mean() < 1.0
    meta = json.loads(json.dumps(read_artifact(tmp_path / "bundled.parquet").meta.extra))
    assert meta["decoder"].startswith("pyav ")
    # The program path, asked for without the program: one line saying what to do.
    missing = subprocess.run(
        [*ZSAR, *args, "--decoder", "ffmpeg", "-o", str(tmp_path / "x.parquet")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert "ffmpeg not found on PATH" in missing.stderr
