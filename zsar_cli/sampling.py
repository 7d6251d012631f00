"""Which frames to take from a video: sampling plans and the rule that picks decoded frames.

Input: a `VideoInfo` and the sampling options. Output: a `SamplingPlan` (pure, no I/O), and
`FramePicker`, which applies a plan to decoded frames in presentation order. Every decoder
(`zsar_cli.video`: the ffmpeg program, FFmpeg's libraries through PyAV, NVDEC through
torchcodec) keeps the same frames for the same plan; re-exported by `zsar_cli.video`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from zsar_cli.errors import VideoError
from zsar_cli.probe import VideoInfo

# Samples further apart than this are fetched by seeking rather than by decoding the whole
# stream: typical GOPs are 1-10 s, so below ~2 s a sequential decode reads about as many frames
# as the seeks would and avoids their start-up cost. The in-process decoders then seek only
# where the keyframe index shows a keyframe between the decoder's position and the target.
SEEK_MIN_GAP_S = 2.0
# Timestamps within this of a target count as reaching it (pts are rounded to the time base).
EPS = 1e-6


@dataclass(frozen=True)
class SamplingPlan:
    """Which frames to take from a window [t0, t1) of a video.

    mode "grid": the first decoded frame at or after each of `count` times origin + k·step,
    decoded sequentially; "seek": the same rule, seeking towards each target; "all": every frame
    in the window (at most `count` when set: a clip with fewer frames than asked for).
    `frames_per_segment` > 0 assigns segment = i // S. `exact_count` plans (uniform, segments)
    ask for `count` distinct frames; rate plans (fps) for at most `count`.
    """

    mode: str
    t0: float
    t1: float
    origin: float = 0.0
    step: float = 0.0
    count: int | None = None
    exact_count: bool = False
    frames_per_segment: int = 0

    def targets(self) -> list[float]:
        if self.count is None or self.mode == "all":
            return []
        return [self.origin + k * self.step for k in range(self.count)]


def plan_sampling(
    info: VideoInfo,
    *,
    num_frames: int | None = None,
    fps: float | None = None,
    segments: int | None = None,
    frames_per_segment: int | None = None,
    all_frames: bool = False,
    start: float | None = None,
    end: float | None = None,
    seek_min_gap: float = SEEK_MIN_GAP_S,
) -> SamplingPlan:
    """Turn sampling options into a plan for one video (VideoError for an empty window).

    A clip with fewer frames than requested is not an error here: decoding returns the distinct
    frames there are, and the stage warns (issue #16).
    """
    t0 = info.start_time + (start or 0.0)
    t_end = info.start_time + info.duration
    t1 = t_end if end is None else min(t_end, info.start_time + end)
    window = t1 - t0
    if window <= 0:
        raise VideoError(
            f"{info.path}: empty time window (video is {info.duration:.3f} s, "
            f"--start {start or 0} --end {end if end is not None else 'end'})"
        )
    if all_frames:
        return SamplingPlan("all", t0, t1)
    if fps is not None:
        count = max(1, math.floor(window * fps + 1e-9))
        step = 1.0 / fps
        mode = "seek" if step >= seek_min_gap else "grid"
        return SamplingPlan(mode, t0, t1, origin=t0, step=step, count=count)
    per_segment = 0
    if segments is not None:
        assert frames_per_segment is not None
        num_frames = segments * frames_per_segment
        per_segment = frames_per_segment
    assert num_frames is not None and num_frames > 0
    available = math.floor(window * info.fps + 1e-6) if info.fps else 0
    if available and num_frames > available:
        # Fewer frames than asked for: all of them (a short GIF), which the stage warns about.
        return SamplingPlan(
            "all", t0, t1, count=num_frames, exact_count=True, frames_per_segment=per_segment
        )
    step = window / num_frames
    origin = t0 + step / 2  # segment midpoints
    mode = "seek" if step >= seek_min_gap else "grid"
    return SamplingPlan(
        mode,
        t0,
        t1,
        origin=origin,
        step=step,
        count=num_frames,
        exact_count=True,
        frames_per_segment=per_segment,
    )


def short_end(info: VideoInfo, last_pts: float) -> float | None:
    """Where a decode that stopped at `last_pts` ended (+ one frame), when that falls clearly
    short of the claimed end (a cut-off file, issue #16); None otherwise. The margin allows for
    containers whose duration counts a longer audio track."""
    end = last_pts + 1.0 / info.fps
    claimed = info.start_time + info.duration
    return end if claimed - end > max(1.0, 0.05 * info.duration) else None


def output_size(info: VideoInfo, size: int | None) -> tuple[int, int]:
    """Display size with the shorter side scaled to `size` (aspect kept), as (width, height)."""
    w, h = info.width, info.height
    if not size:
        return w, h
    if w <= h:
        return size, max(1, round(h * size / w))
    return max(1, round(w * size / h)), size


class FramePicker:
    """The plan's rule applied to decoded frames offered in presentation order.

    Grid and seek plans keep the first frame at or after each target origin + k·step; after a
    kept frame at t the next target is the first one after t, so a gap in a variable-rate stream
    skips empty slots instead of repeating a frame (the same rule as the ffmpeg `select`
    expression of `zsar_cli.video_ffmpeg._grid_select`). "all" keeps every frame in [t0, t1).
    """

    def __init__(self, plan: SamplingPlan) -> None:
        self.plan = plan
        self.k = 0
        self.kept = 0
        self.done = False

    def target(self) -> float:
        """The time the next kept frame must reach (the window start for "all")."""
        if self.plan.mode == "all":
            return self.plan.t0
        return self.plan.origin + self.k * self.plan.step

    def offer(self, pts: float) -> bool:
        """Whether to keep the frame at `pts`; sets `done` once nothing later can be kept."""
        plan = self.plan
        if plan.mode == "all":
            if pts >= plan.t1 - EPS:
                self.done = True
                return False
            if pts < plan.t0 - EPS:
                return False
            self.kept += 1
            self.done = plan.count is not None and self.kept >= plan.count
            return True
        if pts >= plan.t1 + EPS:
            self.done = True
            return False
        if pts < plan.origin + self.k * plan.step - EPS:
            return False
        self.k = math.floor((pts - plan.origin + EPS) / plan.step) + 1
        self.kept += 1
        if plan.count is not None and self.kept >= plan.count:
            self.done = True
        return True
