"""Decoding in process with the FFmpeg libraries that the PyAV wheel bundles (`--decoder pyav`).

Input: a video file. Output: `PyAVReader`, which probes it (`VideoInfo`, the same facts
`ffprobe` gives), then yields (presentation time, H×W×3 uint8 RGB) pairs for a `SamplingPlan`,
the frame number of each, and how much of the video the file really holds.

Why in process: a short clip costs two program start-ups with ffprobe + ffmpeg (~60-100 ms), more
than decoding it; here one open serves the probe and every sample, and the file is read once
when its samples share a GOP (docs/benchmarks.md). Seeks go to the keyframe before a target only
when the container's index shows a keyframe past the decoder's position, so sparse samples seek
and dense ones (or a clip with one keyframe) decode straight through. Rotation (display matrix),
sample aspect ratio and `--size` are applied by swscale (bicubic, as `zsar_cli.video`'s ffmpeg
filter graph does), and timestamps are the decoded frames' own pts.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from zsar_cli.errors import VideoError
from zsar_cli.probe import (
    DecodeLimits,
    VideoInfo,
    _ff_path,
    check_file,
    check_frame_size,
    make_info,
    playlist_kind,
    playlist_refusal,
)
from zsar_cli.pyav_index import KeyframeIndex, container_options, packet_times, reason
from zsar_cli.sampling import (
    EPS,
    SEEK_MIN_GAP_S,
    FramePicker,
    SamplingPlan,
    output_size,
    short_end,
)

# Demuxers whose packets carry their frame's presentation time (first name of the format).
PTS_CONTAINERS = frozenset({"mov", "matroska"})
# Demuxers whose packets carry decode times only.
DTS_CONTAINERS = frozenset({"avi"})
# A seek that lands on a keyframe after its target (index timestamps are decode times, which
# precede presentation times) steps back this many times at most.
MAX_SEEK_RETRIES = 6


# Frames this large or larger decode faster with FFmpeg's frame threads, one per core. Measured
# on 2 idle cores (issue #17, docs/benchmarks.md): 640x360 H.264 0.24 s one-threaded, 0.21 s
# with 2 threads (and 0.23 s with FFmpeg's own choice, cores + 1); 960x540 0.28 s against
# 0.18 s; 320x240 0.034 s against 0.031 s for a third more CPU, so small frames keep one thread.
# On a loaded machine the threads only add CPU; --workers N (one thread per video) is the
# setting for batches.
FRAME_THREADS_MIN_PIXELS = 640 * 360


def decoder_threads(width: int, height: int, threads: int = 0) -> int:
    """Decoder threads for a video: `threads` when given (1 when several videos decode at
    once); 0 picks one thread for frames under FRAME_THREADS_MIN_PIXELS, else one per core
    (FFmpeg's own 0 starts cores + 1, which measured slower on 2 cores)."""
    if threads > 0:
        return threads
    if width * height < FRAME_THREADS_MIN_PIXELS:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, 16))


def version() -> str:
    """The decoder as provenance records it."""
    import av

    return f"pyav {av.__version__} (FFmpeg {av.ffmpeg_version_info})"


class PyAVReader:
    """One open video: its `info`, then `frames(plan, size)` once. Use as a context manager."""

    decoder = "pyav"

    def __init__(
        self,
        path: Path,
        limits: DecodeLimits | None = None,
        threads: int = 0,
        *,
        seeks: bool = True,
        skips: bool = True,
    ) -> None:
        """`seeks=False` decodes straight through and `skips=False` decodes every frame (the
        tests compare both ways; the frames kept are the same)."""
        import av

        self.path = path
        self.seeks, self.skips = seeks, skips
        self.limits = limits or DecodeLimits()
        self._threads = threads
        self._pending: tuple[float, Any] | None = None  # decoded, not yet handed out
        self._keyframes: dict[float, float | None] = {}  # target → the keyframe before it
        check_file(path)
        self.container: Any = self._open(av)
        try:
            self._setup(av)
        except BaseException:
            self.container.close()
            raise

    def _open(self, av: Any) -> Any:
        path = self.path
        try:
            return av.open(_ff_path(path), container_options=container_options(self.limits))
        except av.error.FFmpegError as exc:
            kind = playlist_kind(path)
            if kind is not None and not self.limits.allow_playlists:
                raise playlist_refusal(path, kind) from None
            raise VideoError(f"{path}: not a readable video ({reason(exc)})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise VideoError(f"{path}: not a readable video ({reason(exc)})") from None

    def _video_stream(self, av: Any) -> Any:
        """The first video stream that is not cover art, configured for decoding."""
        container, path = self.container, self.path
        attached = av.stream.Disposition.attached_pic
        # Cover art in audio files is a one-frame "video" stream; it is not a video.
        videos = [s for s in container.streams.video if not (s.disposition & attached)]
        if not videos:
            kinds = sorted({s.type for s in container.streams})
            what = f"only {', '.join(kinds)} streams" if kinds else "no streams"
            raise VideoError(f"{path}: no video stream ({what})")
        stream = videos[0]
        for other in container.streams:
            if other is not stream:
                other.discard = av.stream.Discard.all  # the demuxer drops their packets early
        codec = stream.codec_context
        if codec is None:  # a codec id FFmpeg has no decoder for (or a damaged header)
            raise VideoError(f"{path}: no decoder for its video stream's codec")
        check_frame_size(path, codec.width, codec.height, self.limits)
        # The decoder itself refuses larger frames (a stream may change size mid-way).
        codec.options = {"max_pixels": str(self.limits.decoder_max_pixels)}
        threads = decoder_threads(codec.width, codec.height, self._threads)
        if threads == 1:
            codec.thread_count = 1
        else:
            codec.thread_type = "AUTO"
            codec.thread_count = threads
        return stream

    def _reopen(self) -> None:
        """The file opened anew, at its start (a seek to the start is not exact in every
        demuxer: mpegts seeks by packet times and can land after the first keyframe)."""
        import av

        self.container.close()
        self.container = self._open(av)
        self.stream = self._video_stream(av)
        self._keyframes.clear()

    def _rewind(self) -> None:
        """Back to the first frame, decoded and pending."""
        self._reopen()
        self._iter = self._decode_from_here()
        self._eof = False
        self._pending = None
        self._pending = self._next()

    def _setup(self, av: Any) -> None:
        container = self.container
        stream = self.stream = self._video_stream(av)
        self._tb = Fraction(stream.time_base or Fraction(1, 90000))
        # pts · num / den: one rounding, the same float as the exact fraction (= ffprobe's).
        self._tb_num, self._tb_den = self._tb.numerator, self._tb.denominator
        self._skip_before = -math.inf
        # Skipping frames is safe only where each packet carries its frame's own pts; elsewhere
        # (AVI) the decoder pairs output frames with packet times, and skipping shifts them.
        demuxer = container.format.name.split(",")[0]
        self._skips_ok = self.skips and demuxer in PTS_CONTAINERS
        self._dts_times = demuxer in DTS_CONTAINERS
        self._reformatter = av.video.reformatter.VideoReformatter()
        self._error = av.error.FFmpegError
        self._pending = None
        self._last_pts: float | None = None  # latest frame decoded (kept or not)
        self._eof = False
        self._missed_target = False
        self._iter = self._decode_from_here()
        first = self._next()
        if first is None:
            raise VideoError(f"{self.path}: no decodable video frames")
        self._pending = first
        self._first_pts = first[0]
        self.info = self._info(first[1])
        self._index_scan()
        self._tail_end: float | None = None
        if self._needs_tail_scan():
            self._tail_end = self._scan_tail()

    def _info(self, first: Any) -> VideoInfo:
        stream, codec, container = self.stream, self.stream.codec_context, self.container
        tb = self._tb
        if stream.start_time is not None:
            start = float(stream.start_time * tb)
        elif container.start_time is not None:
            start = container.start_time / 1e6
        else:
            start = 0.0
        if stream.duration:
            duration = float(stream.duration * tb)
        elif container.duration:
            duration = container.duration / 1e6
        else:
            duration = 0.0
        sar = stream.sample_aspect_ratio
        return make_info(
            self.path,
            coded_width=codec.width,
            coded_height=codec.height,
            sar=float(sar) if sar else 0.0,
            rotation=round(first.rotation or 0) % 360,
            avg_rate=float(stream.average_rate or 0),
            real_rate=float(stream.base_rate or 0),
            start_time=start,
            duration=duration,
            nb_frames=stream.frames or None,
            codec=codec.codec.canonical_name,
            limits=self.limits,
        )

    def _index_scan(self) -> None:
        self._index = KeyframeIndex.scan(self.stream, self.path, self._tb, self._first_pts)
        self._index_truncated = self._index.truncated
        self._index_end = self._index.end

    def _claim_margin(self) -> float:
        return max(1.0, 0.05 * self.info.duration)

    def _needs_tail_scan(self) -> bool:
        """Whether only reading the file's end tells if it holds all it claims: no index covers
        the claimed duration (mkv without cues, avi without idx1, ...)."""
        if self._index_truncated or self.info.duration <= 0:
            return False
        claimed = self.info.start_time + self.info.duration
        return self._index_end is None or self._index_end < claimed - self._claim_margin()

    def _scan_tail(self) -> float | None:
        """The last packet's end time, by demuxing (no decoding) from a few seconds before the
        claimed end, or from the start when the data stops before that. Rewinds afterwards."""
        claimed = self.info.start_time + self.info.duration
        end: float | None = None
        for point in (claimed - 3.0, None):
            try:
                if point is None or point <= self._first_pts:
                    self._reopen()
                else:
                    self.container.seek(
                        math.floor(point / self._tb), stream=self.stream, backward=True
                    )
                for packet in self.container.demux(self.stream):
                    if packet.pts is not None and packet.size:
                        t = float((packet.pts + (packet.duration or 0)) * self._tb)
                        end = t if end is None else max(end, t)
            except self._error:
                pass  # a read error ends the data as EOF does
            if end is not None or point is None:
                break
        self._rewind()
        self._last_pts = None
        return end

    def __enter__(self) -> PyAVReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.container.close()

    # -- decoding --------------------------------------------------------------------------

    def _decode_from_here(self) -> Iterator[tuple[float, Any]]:
        """(pts seconds, frame) in presentation order from the demuxer's position.

        A packet whose frame is presented before `_skip_before` is never kept, so when no
        other frame references it (a non-reference B-frame) it is not decoded at all; that is
        most frames of a typical H.264 or MPEG-4 stream between two samples. A packet that
        does not decode is skipped (ffmpeg conceals such errors too); a read error ends the
        stream.
        """
        demux = self.container.demux(self.stream)
        codec = self.stream.codec_context
        num, den = self._tb_num, self._tb_den
        skipping = False
        # FFmpeg's best-effort timestamp (libavcodec guess_correct_pts), which ffmpeg and
        # ffprobe report: the frame's pts unless those are less monotonic than its packet dts.
        # Reset at each seek, as a flush resets it. An AVI stores no presentation times (the
        # pts a decoder makes up for its B-frames are out of order): its frames take the dts
        # of the packet that released them, as FFmpeg's own readers of AVI do.
        last_pts = last_dts = None
        faulty_pts = faulty_dts = 0
        while True:
            try:
                packet = next(demux)
            except StopIteration:
                break
            except self._error:
                break  # a truncated or corrupt container: the data ends here
            pts = packet.pts
            skip = self._skips_ok and pts is not None and pts * num / den < self._skip_before - EPS
            if skip != skipping:
                codec.skip_frame = "NONREF" if skip else "DEFAULT"
                skipping = skip
            try:
                frames = packet.decode()
            except self._error:
                continue
            for frame in frames:
                fpts, fdts = frame.pts, frame.dts
                if fdts is not None:
                    faulty_dts += last_dts is not None and fdts <= last_dts
                    last_dts = fdts
                if fpts is not None:
                    faulty_pts += last_pts is not None and fpts <= last_pts
                    last_pts = fpts
                best = (
                    fpts
                    if fpts is not None
                    and not self._dts_times
                    and (faulty_pts <= faulty_dts or fdts is None)
                    else fdts
                )
                if best is not None:
                    yield best * num / den, frame
        if skipping:
            codec.skip_frame = "DEFAULT"
        self._eof = True

    def _next(self) -> tuple[float, Any] | None:
        got: tuple[float, Any] | None
        if self._pending is not None:
            got, self._pending = self._pending, None
            return got
        got = next(self._iter, None)
        if got is not None:
            t = got[0]
            self._last_pts = t if self._last_pts is None or t > self._last_pts else self._last_pts
        return got

    def _position(self) -> float | None:
        if self._pending is not None:
            return self._pending[0] - EPS
        return self._last_pts

    def _should_seek(self, target: float, sparse: bool) -> bool:
        """Seek when the index shows a keyframe after the decoder's position and not after the
        target (decoding on would read frames the seek skips); without such an index, only for
        sparse plans and targets more than SEEK_MIN_GAP_S ahead."""
        pos = self._position()
        if pos is None or target <= pos + EPS:
            return False
        # The index decides where it covers the target (a generic demuxer's index holds only
        # the keyframes read so far); elsewhere a seek must promise to skip enough.
        if self._index_end is not None and target <= self._index_end:
            # Asked once per decoded frame while a target is pending: looked up once per
            # target (a bisection and a walk back through its GOP), and again after a reopen,
            # whose generic demuxer's index holds only what it has read again.
            if target not in self._keyframes:
                self._keyframes[target] = self._index.keyframe_before(self.stream, target)
            keyframe = self._keyframes[target]
            return keyframe is not None and keyframe > pos + EPS
        return sparse and target - pos > SEEK_MIN_GAP_S

    def _seek(self, target: float) -> None:
        """Position the decoder at the last keyframe presented at or before `target`.

        FFmpeg seeks to the keyframe before a presentation time; where that lands after the
        target (its index holds decode times, or an open GOP), seek further back and retry.
        """
        point = target
        back = max(1.0 / self.info.fps, 0.05)
        for _ in range(MAX_SEEK_RETRIES + 1):
            try:
                self.container.seek(math.floor(point / self._tb), stream=self.stream, backward=True)
            except self._error:
                return  # not seekable: carry on decoding from where the decoder is
            self._pending = None
            self._eof = False
            self._iter = self._decode_from_here()
            first = self._next()
            if first is None:
                self._missed_target = True
                return
            self._pending = first
            if first[0] <= target + EPS:
                return
            if point <= self._first_pts + EPS:
                break
            point = min(point, first[0]) - back
            back *= 4
        # Every seek landed after the target: decode from the start instead.
        self._rewind()

    def frames(self, plan: SamplingPlan, size: int | None = None) -> Iterator[tuple[float, Any]]:
        """(pts seconds, RGB frame) for a plan, in presentation order."""
        out = output_size(self.info, size)
        picker = FramePicker(plan)
        sparse = plan.mode == "seek"
        sought = None  # one seek per target at most, whatever the index estimates
        # The decoder only moves forward between seeks, so a target found not worth a seek
        # stays so; it is asked once, and the frames before it (never kept: the picker keeps
        # nothing before its target, which lies inside the window) are drained without
        # offering them, a short loop per frame where most frames of a clip are passed over.
        checked = None
        while not picker.done:
            target = picker.target()
            if self.seeks and target != sought and target != checked:
                if self._should_seek(target, sparse or picker.kept == 0):
                    self._seek(target)
                    sought = target
                else:
                    checked = target
            self._skip_before = target if self.skips else -math.inf
            got = self._next()
            if target <= plan.t1:
                before = target - EPS
                while got is not None and got[0] < before:
                    got = self._next()
            if got is None:
                if picker.kept < (plan.count or 0):
                    self._missed_target = True
                break
            t, frame = got
            if picker.offer(t):
                yield t, self._rgb(frame, out)
        self._skip_before = -math.inf

    def _rgb(self, frame: Any, out: tuple[int, int]) -> np.ndarray:
        width, height = out
        turns = (self.info.rotation % 360) // 90
        if turns % 2:
            width, height = height, width
        # The frame's own colour range (full-range sources), as ffmpeg's scale filter does.
        rgb = self._reformatter.reformat(
            frame,
            width=width,
            height=height,
            format="rgb24",
            interpolation="BICUBIC",
            src_color_range=frame.color_range or None,
            threads=1,
        ).to_ndarray()
        if turns:
            rgb = np.ascontiguousarray(np.rot90(rgb, k=turns))
        return rgb

    # -- after decoding ----------------------------------------------------------------------

    def decoded_end(self) -> float | None:
        """Presentation time where the file's video data ends, when that is short of what the
        container claims (a cut-off download); None when no shortfall was seen."""
        claimed = self.info.start_time + self.info.duration
        if self._index_truncated and self._index_end is not None:
            end = max(self._index_end, self._last_pts or 0.0) + 1.0 / self.info.fps
            return min(claimed, end)
        if self._tail_end is not None and claimed - self._tail_end > self._claim_margin():
            return self._tail_end
        if (self._eof or self._missed_target) and self._last_pts is not None:
            return short_end(self.info, self._last_pts)
        return None

    def frame_index(self) -> Callable[[float], int]:
        """A pts → frame number function (packet times of a variable-rate stream read once).

        Constant rate: frames counted from the first decoded frame, which is the stream start
        except where a decoder delay leaves the start without a frame (AVI with B-frames)."""
        fps, origin = self.info.fps, self._first_pts
        if not self.info.variable_frame_rate:
            return lambda pts: max(0, round((pts - origin) * fps))
        times = packet_times(self.path, self.limits, self.stream.index)
        if times.size == 0:
            return lambda pts: max(0, round((pts - origin) * fps))

        def rank(pts: float) -> int:
            return min(int(np.searchsorted(times, pts - 1e-6)), len(times) - 1)

        return rank


def probe(path: Path, limits: DecodeLimits | None = None) -> VideoInfo:
    """The video's facts through PyAV (opens, reads the first frame for its rotation, closes)."""
    with PyAVReader(path, limits, threads=1) as reader:
        return reader.info
