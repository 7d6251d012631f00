"""tests/clips.py: the PyAV-made test clips against the ffmpeg program's, and its refusals.

Every make_clip variant the tests use (AWKWARD in test_extract_frames.py and the others below) is
made both ways and read back with PyAV: the same container, codec, pixel format, size, start time,
frame count, frame pts (±1 ms), keyframes and picture types (-g, -bf), mp4 index placement
(-movflags), a file size within 15% (a bit rate, quantizer or crf that did not take effect moves
it further: -q:v 2 makes twice the bytes of -q:v 5), and pixels within a codec tolerance (x264
and libvpx differ between the program's and PyAV's builds). The comparison needs the program
(marker `ffmpeg`); the refusals and the quantizer check do not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from av.video.frame import PictureType

from tests.clips import make_audio, make_clip, make_clip_with_ffmpeg
from tests.test_extract_frames import AWKWARD

# The other make_clip variants in the tests (same options; durations and rates as used there).
OTHER_VARIANTS: dict[str, dict[str, Any]] = {
    "default.mp4": dict(duration=2.0),
    "private_recording.ts": dict(duration=2.0, rate="10", extra_output=["-f", "mpegts"]),
    "three.gif": dict(duration=0.3, rate="10", extra_output=[]),
    "x264.mkv": dict(duration=3.0, extra_output=["-c:v", "libx264"]),
    "faststart.mp4": dict(
        duration=8.0, extra_output=["-pix_fmt", "yuv420p", "-movflags", "+faststart", "-g", "25"]
    ),
    "gop10.mp4": dict(
        duration=6.0, extra_output=["-c:v", "libx264", "-g", "10", "-pix_fmt", "yuv420p"]
    ),
    "two_fps.mp4": dict(duration=3.0, rate="2"),
    "tiny.mp4": dict(duration=1.0, rate="10", size="64x48"),
    "rate24.mkv": dict(duration=1.5, rate="24"),
    "large.mp4": dict(duration=1.0, size="640x360"),
    # Translated but unused so far: checked here so that a first user gets the program's clip.
    "crf.mp4": dict(
        duration=2.0, extra_output=["-c:v", "libx264", "-crf", "35", "-preset", "fast"]
    ),
    "mpeg4_q2.avi": dict(duration=3.0, extra_output=["-c:v", "mpeg4", "-q:v", "2"]),
}
VARIANTS: dict[str, dict[str, Any]] = {
    **{name: dict(duration=3.0, **kw) for name, kw in AWKWARD.items()},
    **OTHER_VARIANTS,
}
# Mean absolute RGB difference allowed per frame: ffv1 is lossless both ways; the lossy codecs
# come from different encoder builds (measured: at most 3.5, libvpx-vp9; 1.6 mpeg4, 1.5 x264).
PIXEL_TOLERANCE = {"ffv1": 0.0}
LOSSY_TOLERANCE = 5.0
SIZE_RATIO = 1.15


@dataclass
class ClipFacts:
    container: str
    codec: str
    pix_fmt: str | None
    size: tuple[int, int]
    start_time: float | None
    times: list[float]
    keyframes: list[int]
    picture_types: str
    frames: list[np.ndarray]
    file_size: int
    index_first: bool | None  # mp4: the moov atom before the media data (-movflags +faststart)


def read_facts(path: Path) -> ClipFacts:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        start = stream.start_time
        context = stream.codec_context
        data = path.read_bytes()
        return ClipFacts(
            container=container.format.name,
            codec=context.name,
            pix_fmt=context.format.name if context.format else None,
            size=(context.width, context.height),
            start_time=float(start * stream.time_base) if start is not None else None,
            times=[float(f.time or 0.0) for f in frames],
            keyframes=[i for i, f in enumerate(frames) if f.key_frame],
            picture_types="".join(PictureType(f.pict_type).name for f in frames),
            frames=[f.to_ndarray(format="rgb24").astype(np.int16) for f in frames],
            file_size=len(data),
            index_first=data.find(b"moov") < data.find(b"mdat") if path.suffix == ".mp4" else None,
        )


@pytest.mark.ffmpeg
@pytest.mark.parametrize("name", list(VARIANTS))
def test_pyav_clip_is_the_program_clip(tmp_path, name):
    kwargs = VARIANTS[name]
    (tmp_path / "pyav").mkdir()
    (tmp_path / "program").mkdir()
    ours = read_facts(make_clip(tmp_path / "pyav" / name, **kwargs))
    theirs = read_facts(make_clip_with_ffmpeg(tmp_path / "program" / name, **kwargs))
    same = ("container", "codec", "pix_fmt", "size", "keyframes", "picture_types", "index_first")
    assert {k: getattr(ours, k) for k in same} == {k: getattr(theirs, k) for k in same}
    assert ours.start_time == pytest.approx(theirs.start_time, abs=1e-3)
    assert len(ours.times) == len(theirs.times)
    np.testing.assert_allclose(ours.times, theirs.times, atol=1e-3)
    assert 1 / SIZE_RATIO < ours.file_size / theirs.file_size < SIZE_RATIO
    tolerance = PIXEL_TOLERANCE.get(ours.codec, LOSSY_TOLERANCE)
    worst = max(np.abs(a - b).mean() for a, b in zip(ours.frames, theirs.frames, strict=True))
    assert worst <= tolerance, (name, worst)


def test_quantizer_takes_effect(tmp_path):
    # PyAV's frames carry no quality, which mpeg4 takes its quantizer from: without qmin = qmax
    # every -q:v gave the bytes of -q:v 2.
    sizes = [
        make_clip(tmp_path / f"q{q}.avi", extra_output=["-c:v", "mpeg4", "-q:v", str(q)])
        .stat()
        .st_size
        for q in (2, 5, 10)
    ]
    assert sizes[0] > 1.5 * sizes[1] and sizes[1] > 1.3 * sizes[2]


def test_audio_file_has_no_video_stream(tmp_path):
    with av.open(str(make_audio(tmp_path / "a.m4a"))) as container:
        assert [s.type for s in container.streams] == ["audio"]
        assert container.duration == pytest.approx(1_000_000, rel=0.05)


@pytest.mark.parametrize(
    ("extra_output", "message"),
    [
        (["-c:v", "libx264", "-tune", "film"], "ffmpeg option -tune film has no PyAV translation"),
        (["-fps_mode", "cfr"], "ffmpeg option -fps_mode cfr has no PyAV translation"),
        (["-c:v", "mjpeg"], "encoder mjpeg"),
        (["-c:v", "libx264", "-q:v", "5"], "-q:v with libx264"),
        (["-vf", "setpts='(N+floor(N/10)*4)/25/TB'"], "add -fps_mode vfr"),
        (["-pix_fmt"], "expected -option value pairs"),
    ],
)
def test_an_option_without_a_translation_is_named(tmp_path, extra_output, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make_clip(tmp_path / "c.mp4", duration=1.0, extra_output=extra_output)
