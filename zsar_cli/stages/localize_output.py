"""What the `localize` stage produces, before it is written.

`LocalizeResult` holds the output tables and the notes for the user; `intervals` rows are built
here from frame spans (their seconds from the frames' timestamps), and `activitynet_results`
turns an `intervals` table into ActivityNet results JSON (written by `zsar_cli.jsonio`).
Nothing is read or written here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from zsar_cli.artifacts import build_table
from zsar_cli.stages.localize_inputs import VideoFrames
from zsar_cli.stages.localize_zeal import intervals_to_seconds


@dataclass
class LocalizeResult:
    """What a run produced: the output table(s) and one-line notes for the user."""

    intervals: pa.Table | None = None
    frame_scores: pa.Table | None = None
    videos: int = 0
    failed: int = 0
    notes: list[str] = field(default_factory=list)
    labels_used: dict[str, list[str]] = field(default_factory=dict)
    skipped: bool = False  # the output was already complete with these settings


def new_interval_rows() -> dict[str, list[Any]]:
    """Empty columns of an `intervals` table (with the frame span), filled by add_interval_rows."""
    return {
        k: []
        for k in ("video_id", "label", "t_start", "t_end", "score", "frame_start", "frame_end")
    }


def add_interval_rows(
    rows: dict[str, list[Any]],
    video: VideoFrames,
    label: str,
    spans: np.ndarray,
    scores: np.ndarray,
    compat: bool,
) -> None:
    """Append one video's spans (frame positions, end inclusive) of one label, in seconds."""
    t_start, t_end = intervals_to_seconds(spans, video.timestamp, compat)
    for (s, e), a, b, score in zip(spans.tolist(), t_start, t_end, scores, strict=True):
        rows["video_id"].append(video.video_id)
        rows["label"].append(label)
        rows["t_start"].append(float(a))
        rows["t_end"].append(float(b))
        rows["score"].append(float(score))
        rows["frame_start"].append(int(video.frame_index[s]))
        rows["frame_end"].append(int(video.frame_index[e]))


def intervals_table(rows: dict[str, list[Any]]) -> pa.Table:
    """The collected rows as an `intervals` table (frame_start/frame_end as extra columns)."""
    extra = (pa.field("frame_start", pa.int64()), pa.field("frame_end", pa.int64()))
    return build_table("intervals", rows, extra_fields=extra)


def usable(video: VideoFrames, result: LocalizeResult) -> bool:
    """Whether the video has frames; if not, it counts as failed, with a note saying why."""
    if video.error is not None:
        result.failed += 1
        result.notes.append(f"video {video.video_id}: no frames (upstream error: {video.error})")
        return False
    if len(video.frame_index) == 0:
        result.failed += 1
        result.notes.append(f"video {video.video_id}: no frames")
        return False
    return True


def activitynet_results(intervals: pa.Table, videos: Iterable[str] = ()) -> dict[str, Any]:
    """ActivityNet results JSON: {version, results: {video: [{label, score, segment}]}}."""
    results: dict[str, list[dict[str, Any]]] = {str(v): [] for v in videos}
    data = intervals.select(["video_id", "label", "t_start", "t_end", "score"]).to_pylist()
    for row in data:
        results.setdefault(row["video_id"], []).append(
            {
                "label": row["label"],
                "score": None if row["score"] != row["score"] else row["score"],
                "segment": [row["t_start"], row["t_end"]],
            }
        )
    return {
        "version": "VERSION 1.3",
        "results": results,
        "external_data": {"used": False, "details": "zsar localize"},
    }


def write_through_runner(
    output: str,
    kind: str,
    config: Any,
    upstream: Sequence[str],
    result: Callable[[], tuple[LocalizeResult, dict[str, Any]]],
    table: Callable[[LocalizeResult], pa.Table | None],
    shard: Any = None,
    force: bool = False,
) -> LocalizeResult | None:
    """Write one table of a (lazily computed) localize/anomaly result per video through the
    shared runner; a LocalizeResult marked skipped when the output was already up to date."""
    from zsar_cli.runner import run_table_stage

    summary = run_table_stage(
        output,
        kind=kind,
        config=config,
        upstream=upstream,
        table=lambda: table(result()[0]),
        extra_metadata=lambda: result()[1],
        shard=shard,
        force=force,
    )
    if summary.skipped:
        return LocalizeResult(notes=[f"up to date: {summary.output}"], skipped=True)
    return None
