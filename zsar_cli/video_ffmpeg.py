"""Decoding with the ffmpeg program (`--decoder ffmpeg`).

Input: a video file and a `SamplingPlan`. Output: `FFmpegReader`, which probes it with ffprobe
and yields (presentation time, H×W×3 uint8 RGB) pairs: ffmpeg-python builds the command lines,
the ffmpeg binary does all decoding, rotation (display matrix) and resizing, and timestamps are
the decoded frames' real presentation times as its `showinfo` filter reports them with
`-copyts` (the same values `ffprobe -show_frames` gives), never a nominal `i / fps`. Dense
plans are one process whose `select` filter keeps the frames; sparse ones a process per seek.
"""

from __future__ import annotations

import contextlib
import math
import queue
import re
import subprocess
import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from zsar_cli.errors import VideoError
from zsar_cli.probe import (
    DecodeLimits,
    VideoInfo,
    _ff_path,
    _last_line,
    binary_input_options,
    playlist_refusal,
    probe_binary,
)
from zsar_cli.sampling import EPS, SamplingPlan, output_size, short_end

# Seeks of one video run this many ffmpeg processes at once (each is mostly start-up latency).
SEEK_CONCURRENCY = 4
_SHOWINFO_RE = re.compile(r"\bn:\s*(\d+)\s+pts:\s*(-?\d+)\s+pts_time:\s*(-?[0-9.eE+-]+|nan)")
_TIME_BASE_RE = re.compile(r"config in time_base:\s*(\d+)/(\d+)")


class _StderrReader(threading.Thread):
    """Drains ffmpeg's stderr: showinfo pts into a queue, the rest kept for error messages."""

    def __init__(self, stream) -> None:  # type: ignore[no-untyped-def]
        super().__init__(daemon=True)
        self.stream = stream
        self.pts: queue.Queue[float | None] = queue.Queue()
        self.tail: deque[str] = deque(maxlen=12)

    def run(self) -> None:
        # showinfo prints pts_time with 6 significant digits; its integer pts in the time base
        # it reports first give the exact time (the frame numbers of VFR streams need it).
        time_base: tuple[int, int] | None = None
        for raw in iter(self.stream.readline, b""):
            line = raw.decode(errors="replace")
            showinfo = "showinfo" in line.lower()
            m = _SHOWINFO_RE.search(line) if showinfo else None
            if m:
                if time_base is not None:
                    self.pts.put(int(m.group(2)) * time_base[0] / time_base[1])
                else:
                    self.pts.put(float(m.group(3)))
                continue
            tb = _TIME_BASE_RE.search(line) if showinfo else None
            if tb:
                time_base = (int(tb.group(1)), int(tb.group(2)))
            elif line.strip():
                self.tail.append(line.strip())
        self.pts.put(None)

    def reason(self) -> str:
        useful = [ln for ln in self.tail if "showinfo" not in ln.lower()]
        return useful[-1] if useful else "ffmpeg failed"


def _grid_select(origin: float, step: float) -> str:
    # First frame at or after each grid time origin + k·step. Variable 0 holds the index k of the
    # next target (0 at start); ffmpeg's if() evaluates only the taken branch, so st() runs for
    # selected frames only, and a gap in a variable-rate stream skips empty grid slots instead of
    # bursting duplicates. st() returns k+1 >= 1, which selects the frame.
    eps = 1e-6
    return (
        f"if(gte(t,{origin!r}+ld(0)*{step!r}-{eps}),st(0,floor((t-{origin!r}+{eps})/{step!r})+1),0)"
    )


def _command(
    info: VideoInfo,
    size: tuple[int, int],
    select: str | None,
    seek: float | None,
    read_duration: float | None,
    max_frames: int | None,
    limits: DecodeLimits,
    threads: int | None = None,
) -> list[str]:
    import ffmpeg

    input_kwargs: dict[str, object] = {"copyts": None, **binary_input_options(limits)}
    input_kwargs["max_pixels"] = limits.decoder_max_pixels
    if threads is not None:
        # A one-frame decode gains nothing from frame threads, which only add start-up latency.
        input_kwargs["threads"] = threads
    if seek is not None and seek > 0:
        # With -copyts, -ss counts from the stream start; accurate seeking then discards frames
        # before the target, so the first frame out is the first at or after it.
        input_kwargs["ss"] = f"{seek:.6f}"
    if read_duration is not None:
        input_kwargs["t"] = f"{read_duration:.6f}"
    stream = ffmpeg.input(_ff_path(info.path), **input_kwargs)
    if select is not None:
        stream = stream.filter("select", select)
    stream = stream.filter("showinfo")
    width, height = size
    stream = stream.filter("scale", width, height, flags="bicubic")
    out_kwargs: dict[str, object] = {
        "format": "rawvideo",
        "pix_fmt": "rgb24",
        "fps_mode": "passthrough",
    }
    if max_frames is not None:
        out_kwargs["frames:v"] = max_frames
    compiled = stream.output("pipe:", **out_kwargs).compile()
    return [
        compiled[0],
        "-nostdin",
        "-hide_banner",
        "-nostats",
        "-loglevel",
        "info",
        "-an",
        "-sn",
        "-dn",
        *compiled[1:],
    ]


def _run_pipe(
    cmd: list[str], size: tuple[int, int], path: Path
) -> Iterator[tuple[float, np.ndarray]]:
    width, height = size
    frame_bytes = width * height * 3
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        bufsize=frame_bytes,
    )
    reader = _StderrReader(proc.stderr)
    reader.start()
    assert proc.stdout is not None
    try:
        while True:
            buf = proc.stdout.read(frame_bytes)
            if not buf:
                break
            if len(buf) < frame_bytes:
                break  # a truncated last frame: ffmpeg failed mid-frame
            pts = reader.pts.get()
            if pts is None:
                raise VideoError(f"{path}: ffmpeg produced a frame without a timestamp")
            yield pts, np.frombuffer(buf, dtype=np.uint8).reshape(height, width, 3)
        returncode = proc.wait()
        reader.join(timeout=5)
        if returncode != 0:
            if any("not on whitelist" in line for line in reader.tail):
                raise playlist_refusal(path)
            raise VideoError(f"{path}: decoding failed ({reader.reason()})")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()


class FFmpegReader:
    """A video probed by ffprobe and decoded by ffmpeg processes (one per plan, or per seek)."""

    decoder = "ffmpeg"

    def __init__(self, path: Path, limits: DecodeLimits | None = None) -> None:
        self.limits = limits or DecodeLimits()
        self.info = probe_binary(path, self.limits)
        self._last_pts: float | None = None
        self._short = False  # frames stopped before the plan's window was served

    def __enter__(self) -> FFmpegReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        pass

    def frames(
        self, plan: SamplingPlan, size: int | None = None
    ) -> Iterator[tuple[float, np.ndarray]]:
        """Stream (pts seconds, RGB frame) for a plan, in presentation order."""
        info = self.info
        out = output_size(info, size)
        kept = 0
        for pts, rgb in self._frames(plan, out):
            self._last_pts = pts
            kept += 1
            yield pts, rgb
        self._short = plan.mode == "all" or kept < (plan.count or 0)

    def _frames(
        self, plan: SamplingPlan, out: tuple[int, int]
    ) -> Iterator[tuple[float, np.ndarray]]:
        info = self.info
        margin = 2.0 / info.fps if info.fps else 0.1
        window_start = plan.t0 - info.start_time
        if plan.mode == "seek":
            yield from self._seeks(plan, out)
            return
        if plan.mode == "all":
            select = f"gte(t,{plan.t0!r}-1e-6)*lt(t,{plan.t1!r}-1e-6)"
            max_frames = plan.count
        else:
            select = _grid_select(plan.origin, plan.step)
            max_frames = plan.count
        read_duration = (
            plan.t1 - plan.t0 + margin if plan.t1 < info.start_time + info.duration else None
        )
        cmd = _command(
            info,
            out,
            select,
            seek=window_start if window_start > 0 else None,
            read_duration=read_duration,
            max_frames=max_frames,
            limits=self.limits,
        )
        for pts, rgb in _run_pipe(cmd, out, info.path):
            if plan.mode == "all" or pts < plan.t1 + EPS:
                yield pts, rgb

    def _seeks(
        self, plan: SamplingPlan, out: tuple[int, int]
    ) -> Iterator[tuple[float, np.ndarray]]:
        """One short ffmpeg run per target; a few run at once, since each is mostly process
        start-up and a partial GOP decode (latency, not throughput). Results keep target order."""
        from concurrent.futures import ThreadPoolExecutor

        info = self.info

        def one(target: float) -> tuple[float, np.ndarray] | None:
            cmd = _command(
                info,
                out,
                None,
                seek=target - info.start_time,
                read_duration=None,
                max_frames=1,
                limits=self.limits,
                threads=1,
            )
            got = list(_run_pipe(cmd, out, info.path))
            return got[0] if got else None

        targets = plan.targets()
        last = -math.inf
        with ThreadPoolExecutor(max_workers=min(SEEK_CONCURRENCY, len(targets))) as pool:
            for got in pool.map(one, targets):
                if got is None:
                    continue
                pts, rgb = got
                if pts <= last + 1e-9 or pts >= plan.t1 + EPS:
                    continue  # two targets landed on one frame: keep it once
                last = pts
                yield pts, rgb

    def decoded_end(self) -> float | None:
        """Where the frames stopped short of the window's end (a cut-off file), else None."""
        if not self._short or self._last_pts is None:
            return None
        return short_end(self.info, self._last_pts)

    def frame_index(self) -> Callable[[float], int]:
        return FrameIndexer(self.info)


def packet_times(path: Path, limits: DecodeLimits | None = None) -> np.ndarray:
    """Sorted presentation times of every video packet (demux only, no decoding), by ffprobe."""
    opts: list[str] = []
    for key, value in binary_input_options(limits or DecodeLimits()).items():
        opts += [f"-{key}", value]
    cmd = [
        "ffprobe",
        "-v",
        "error",
        *opts,
        "-select_streams",
        "v:0",
        "-show_entries",
        "packet=pts_time",
        "-of",
        "csv=p=0",
        _ff_path(path),
    ]
    res = subprocess.run(cmd, capture_output=True, check=False)
    if res.returncode != 0:
        raise VideoError(f"{path}: cannot read packet times ({_last_line(res.stderr.decode())})")
    values = []
    for line in res.stdout.decode().split():
        with contextlib.suppress(ValueError):
            values.append(float(line.strip().rstrip(",")))
    return np.sort(np.asarray(values, dtype=np.float64))


class FrameIndexer:
    """Maps a presentation time to the decoded frame number (0-based, presentation order).

    Constant-rate streams: round((pts - start) · fps). Variable-rate streams: the rank of the pts
    among all packet times, read once by a demux-only ffprobe pass.
    """

    def __init__(self, info: VideoInfo) -> None:
        self.info = info
        self._times: np.ndarray | None = None
        if info.variable_frame_rate:
            self._times = packet_times(info.path)
            if self._times.size == 0:
                self._times = None

    def __call__(self, pts: float) -> int:
        if self._times is not None:
            i = int(np.searchsorted(self._times, pts - 1e-6))
            return min(i, len(self._times) - 1)
        return max(0, round((pts - self.info.start_time) * self.info.fps))
