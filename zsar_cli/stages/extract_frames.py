"""Stage `extract-frames`: videos → `frames` artifact.

Input: video files, folders (recursive, by extension), list files (one path per line, or CSV
`video,label` or `video,label,start,end`) and Kinetics annotation CSVs (see
`zsar_cli.stages.extract_inputs`). Output: a `frames` artifact, one row per sampled frame
(JPEG/PNG/raw RGB bytes), with the decoded frame number and its real presentation time; per
video, on each of its rows, the span it was read over (`span_start`/`span_end`, null for the
whole video) and the video's own frame count and average rate (`frame_count`, `fps`: what
expands sampled scores to every frame, as the UCF-Crime protocol scores them). A video that
fails is one row with `error` set, and every other video still completes.

A row's span restricts sampling to [start, end) of the video (`--num-frames` uniform over the
span, `--fps` over the span, segments of the span); timestamps stay the video's own
presentation times. `--start`/`--end` given too narrow each span further (the same seconds of
the video).

Decoding is streamed: frames go from the decoder to the writer in chunks, so memory does not
grow with video length. With `workers > 1` several videos decode at once while rows are still
written in input order (bounded per-video queues keep memory flat).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from zsar_cli.artifacts import STDIO, build_table, read_artifact
from zsar_cli.errors import VideoError, ZsarError
from zsar_cli.images import encode_image
from zsar_cli.outputs import note_input, scoped
from zsar_cli.runner import Unit, run_stage
from zsar_cli.sharding import Shard
from zsar_cli.stages.extract_frames_config import ExtractConfig
from zsar_cli.stages.extract_inputs import LIST_EXTENSIONS as LIST_EXTENSIONS
from zsar_cli.stages.extract_inputs import VideoInput as VideoInput
from zsar_cli.stages.extract_inputs import inputs_fingerprint as inputs_fingerprint
from zsar_cli.stages.extract_inputs import resolve_inputs as resolve_inputs
from zsar_cli.stages.extract_inputs import sample_window
from zsar_cli.video import (
    DecodeLimits,
    check_decoder,
    decoder_version,
    open_video,
    plan_sampling,
)

CHUNK_FRAMES = 32  # frames per written batch: small enough to keep memory flat for long videos
# Finished videos are checkpointed together every this many seconds, not one file each: a
# short clip's own checkpoint file cost a fifth of decoding it (issue #17). A kill redoes at
# most this much work.
CHECKPOINT_EVERY_S = 2.0


@dataclass(frozen=True)
class DecodedFrame:
    frame_index: int
    timestamp: float
    segment: int
    rgb: np.ndarray


# ---------------------------------------------------------------------------------------------
# Decoding one video


@dataclass
class VideoReport:
    """What decoding one video found besides its frames: the duration its container claims, how
    much of it the file holds, and warnings (a clip too short, a file cut short)."""

    duration: float | None = None
    decoded_duration: float | None = None
    frame_count: int | None = None  # frames in the whole video (container count, or estimate)
    fps: float | None = None  # its average frame rate
    warnings: list[str] = field(default_factory=list)


def cut_short_warning(path: object, decoded: float, claimed: float) -> str:
    return (
        f"{path}: the file holds {decoded:.1f} s of the {claimed:.1f} s its container claims "
        "(cut short?); frames after that are missing"
    )


def short_clip_warning(path: object, count: int, requested: int) -> str:
    return (
        f"{path}: {count} distinct frames for the {requested} requested (clip too short for "
        "this sampling); keeping those"
    )


def requested_frames(cfg: ExtractConfig) -> int | None:
    """How many frames an exact-count sampling asks of each video (None for rate sampling)."""
    if cfg.segments is not None and cfg.frames_per_segment is not None:
        return cfg.segments * cfg.frames_per_segment
    return cfg.num_frames


def is_cut_short(duration: float | None, decoded_duration: float | None) -> bool:
    return duration is not None and decoded_duration is not None and decoded_duration < duration


def decode_limits(cfg: ExtractConfig) -> DecodeLimits:
    return DecodeLimits(max_frame_pixels=cfg.max_frame_pixels, allow_playlists=cfg.allow_playlists)


def decode_frames(
    video: VideoInput, config: ExtractConfig, report: VideoReport | None = None
) -> Iterator[DecodedFrame]:
    """Sample and decode one video's frames (raises VideoError with a clear reason).

    `report`, when given, is filled as decoding goes (the durations are known once the video is
    open, and final when the last frame is out).
    """
    cfg = config.validated()
    report = report if report is not None else VideoReport()
    if video.error is not None:
        raise VideoError(video.error)
    # One video at a time: frame threads, one per core, from 640x360 up (smaller frames gain
    # next to nothing from them: video_pyav.decoder_threads); several: one thread each.
    threads = 0 if cfg.workers <= 1 else 1
    with open_video(
        video.path,
        decoder=cfg.decoder,
        device=cfg.decode_device,
        limits=decode_limits(cfg),
        threads=threads,
    ) as reader:
        info = reader.info
        report.duration = info.duration
        report.frame_count = info.frame_count_estimate
        report.fps = info.fps
        start, end = sample_window(video, info, cfg.start, cfg.end)
        plan = plan_sampling(
            info,
            num_frames=cfg.num_frames,
            fps=cfg.fps,
            segments=cfg.segments,
            frames_per_segment=cfg.frames_per_segment,
            all_frames=cfg.all_frames,
            start=start,
            end=end,
        )

        def note_end() -> None:
            end = reader.decoded_end()
            report.decoded_duration = (
                info.duration if end is None else max(0.0, end - info.start_time)
            )

        note_end()
        index = reader.frame_index()
        per_segment = plan.frames_per_segment
        count = 0
        for pts, rgb in reader.frames(plan, cfg.size):
            segment = count // per_segment if per_segment else -1
            yield DecodedFrame(index(pts), pts, segment, rgb)
            count += 1
        note_end()
    if is_cut_short(report.duration, report.decoded_duration):
        assert report.decoded_duration is not None
        report.warnings.append(
            cut_short_warning(video.path, report.decoded_duration, info.duration)
        )
    if count == 0:
        raise VideoError(f"{video.path}: no frames decoded in the requested window")
    if plan.exact_count and plan.count is not None and count < plan.count:
        report.warnings.append(short_clip_warning(video.path, count, plan.count))


def _frames_table(
    video: VideoInput, frames: list[DecodedFrame], cfg: ExtractConfig, report: VideoReport
) -> pa.Table:
    return build_table(
        "frames",
        {
            "video_id": [video.video_id] * len(frames),
            "path": [str(video.path)] * len(frames),
            "label": [video.label] * len(frames),
            "frame_index": [f.frame_index for f in frames],
            "timestamp": [f.timestamp for f in frames],
            "segment": [f.segment for f in frames],
            "width": [f.rgb.shape[1] for f in frames],
            "height": [f.rgb.shape[0] for f in frames],
            "image": [encode_image(f.rgb, cfg.image_format, cfg.quality) for f in frames],
            "error": [None] * len(frames),
            "duration": [report.duration] * len(frames),
            "decoded_duration": [report.decoded_duration] * len(frames),
            **_video_columns(video, report, len(frames)),
        },
    )


def _video_columns(video: VideoInput, report: VideoReport | None, n: int) -> dict[str, list]:
    """The per-video columns every row of a video repeats: its span and frame facts."""
    return {
        "span_start": [video.start] * n,
        "span_end": [video.end] * n,
        "frame_count": [report.frame_count if report else None] * n,
        "fps": [report.fps if report else None] * n,
    }


def error_row(video: VideoInput, message: str, report: VideoReport | None = None) -> pa.Table:
    return build_table(
        "frames",
        {
            "video_id": [video.video_id],
            "path": [str(video.path)],
            "label": [video.label],
            "frame_index": [None],
            "timestamp": [None],
            "segment": [None],
            "width": [None],
            "height": [None],
            "image": [None],
            "error": [message],
            "duration": [report.duration if report else None],
            "decoded_duration": [report.decoded_duration if report else None],
            **_video_columns(video, report, 1),
        },
    )


def _video_tables(
    video: VideoInput, cfg: ExtractConfig, report: VideoReport | None = None
) -> Iterator[pa.Table]:
    """One video's rows in chunks; an error becomes a final error row.

    Exact-count plans (num-frames, segments) are held until complete, so a video that fails
    yields only its error row; rate-based plans stream, and a failure part-way is recorded as an
    error row after the frames that did decode.
    """
    report = report if report is not None else VideoReport()
    chunk: list[DecodedFrame] = []
    hold = cfg.num_frames is not None or cfg.segments is not None
    try:
        for frame in decode_frames(video, cfg, report):
            chunk.append(frame)
            if not hold and len(chunk) >= CHUNK_FRAMES:
                yield _frames_table(video, chunk, cfg, report)
                chunk = []
    except ZsarError as exc:
        if hold:
            chunk = []
        if chunk:
            yield _frames_table(video, chunk, cfg, report)
        yield error_row(video, str(exc), report)
        return
    if chunk:
        yield _frames_table(video, chunk, cfg, report)


# ---------------------------------------------------------------------------------------------
# Many videos


@dataclass
class VideoResult:
    video: VideoInput
    frames: int
    error: str | None
    warnings: list[str] = field(default_factory=list)
    cut_short: bool = False


_DONE = object()


def iter_frame_tables(
    videos: Sequence[VideoInput],
    config: ExtractConfig,
    on_video: Callable[[VideoResult], None] | None = None,
) -> Iterator[pa.Table]:
    """Rows for all videos in input order; `workers` videos decode concurrently."""
    cfg = config.validated()

    reports = [VideoReport() for _ in videos]

    def finish(i: int, tables: list[pa.Table]) -> None:
        if on_video is None:
            return
        errors = [
            t.column("error")[0].as_py()
            for t in tables
            if t.num_rows == 1 and t.column("error")[0].is_valid
        ]
        frames = sum(t.num_rows for t in tables) - len(errors)
        report = reports[i]
        cut = is_cut_short(report.duration, report.decoded_duration)
        on_video(
            VideoResult(videos[i], frames, errors[0] if errors else None, report.warnings, cut)
        )

    if cfg.workers <= 1 or len(videos) <= 1:
        for i, video in enumerate(videos):
            seen: list[pa.Table] = []
            for table in _video_tables(video, cfg, reports[i]):
                seen.append(table.select(["error"]))
                yield table
            finish(i, seen)
        return

    cancel = threading.Event()
    queues: list[queue.Queue[object]] = [queue.Queue(maxsize=4) for _ in videos]

    def work(i: int) -> None:
        q = queues[i]

        def put(item: object) -> None:
            while not cancel.is_set():
                try:
                    q.put(item, timeout=0.2)
                    return
                except queue.Full:
                    continue

        try:
            for table in _video_tables(videos[i], cfg, reports[i]):
                put(table)
                if cancel.is_set():
                    return
        except BaseException as exc:  # surfaced in the consumer thread
            put(exc)
        put(_DONE)

    with ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="zsar-decode") as pool:
        for i in range(len(videos)):
            pool.submit(work, i)
        try:
            for i in range(len(videos)):
                seen = []
                while True:
                    item = queues[i].get()
                    if item is _DONE:
                        break
                    if isinstance(item, BaseException):
                        raise item
                    assert isinstance(item, pa.Table)
                    seen.append(item.select(["error"]))
                    yield item
                finish(i, seen)
        finally:
            cancel.set()


@dataclass
class ExtractSummary:
    videos: int
    failed: int
    frames: int
    errors: list[tuple[str, str]]
    cache_key: str
    skipped: bool = False  # the output was already complete with these settings
    # (video_id, message): too few distinct frames, or a file cut short (issue #16).
    warnings: list[tuple[str, str]] = field(default_factory=list)
    cut_short: list[str] = field(default_factory=list)  # video ids; --strict fails on them


def _result_of(video: VideoInput, table: pa.Table) -> VideoResult:
    errors = [e for e in table.column("error").to_pylist() if e] if table.num_rows else []
    return VideoResult(video, table.num_rows - len(errors), errors[0] if errors else None)


def artifact_warnings(
    table: pa.Table, cfg: ExtractConfig
) -> tuple[list[tuple[str, str]], list[str]]:
    """The warnings a frames table's rows imply, per video in row order, and the ids of the
    videos cut short: what a run reports even when it resumed or skipped finished videos."""
    columns = ["video_id", "path", "error", "duration", "decoded_duration"]
    rows = table.select([c for c in columns if c in table.column_names]).to_pylist()
    requested = requested_frames(cfg)
    per_video: dict[str, dict[str, object]] = {}
    for row in rows:
        seen = per_video.setdefault(row["video_id"], {"frames": 0, "failed": False, **row})
        if row.get("error"):
            seen["failed"] = True
        else:
            seen["frames"] = int(seen["frames"]) + 1  # type: ignore[call-overload]
    warnings: list[tuple[str, str]] = []
    cut_short: list[str] = []
    for video_id, seen in per_video.items():
        duration, decoded = seen.get("duration"), seen.get("decoded_duration")
        if is_cut_short(duration, decoded):  # type: ignore[arg-type]
            warnings.append((video_id, cut_short_warning(seen["path"], decoded, duration)))  # type: ignore[arg-type]
            cut_short.append(video_id)
        frames = int(seen["frames"])  # type: ignore[call-overload]
        if requested is not None and not seen["failed"] and 0 < frames < requested:
            warnings.append((video_id, short_clip_warning(seen["path"], frames, requested)))
    return warnings, cut_short


def frames_metadata(cfg: ExtractConfig) -> dict[str, str]:
    """The frames artifact's own metadata: how images are stored, which decoder made them."""
    return {
        "image_encoding": cfg.image_format,
        "decoder": decoder_version(cfg.decoder, cfg.decode_device),
    }


@scoped
def run(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    config: ExtractConfig,
    on_video: Callable[[VideoResult], None] | None = None,
    videos: Sequence[VideoInput] | None = None,
    shard: Shard | None = None,
    force: bool = False,
    output_shard: Shard | None = None,
) -> ExtractSummary:
    """Resolve inputs, extract every video (or a shard's), write the frames artifact atomically.

    An output already complete with the same settings is skipped; finished videos are
    checkpointed so that a killed run resumes where it stopped (zsar_cli.runner.run_stage).
    """
    cfg = config.validated()
    check_decoder(cfg.decoder, cfg.decode_device)
    videos = list(videos) if videos is not None else resolve_inputs(inputs, cfg.root)
    for video in videos:
        note_input(video.path)  # also when the caller resolved them
    if shard is not None:
        videos = shard.select(videos)
    units = [Unit(i, v.video_id, v) for i, v in enumerate(videos)]
    streamed_warnings: list[tuple[str, str]] = []
    streamed_cut_short: list[str] = []

    def stream(todo: list[Unit]) -> Iterator[tuple[Unit, pa.Table | None]]:
        # iter_frame_tables reports each video once its last rows are out, in input order, so
        # the n-th report closes todo[n] and rows belong to the first unreported video.
        reported: list[int] = [0]
        closed = 0

        def report(result: VideoResult) -> None:
            reported[0] += 1
            streamed_warnings.extend((result.video.video_id, w) for w in result.warnings)
            if result.cut_short:
                streamed_cut_short.append(result.video.video_id)

        for table in iter_frame_tables([u.data for u in todo], cfg, report):
            while closed < reported[0]:
                yield todo[closed], None
                closed += 1
            yield todo[closed], table
        while closed < reported[0]:
            yield todo[closed], None
            closed += 1

    summary = run_stage(
        str(output),
        kind="frames",
        config=cfg.provenance(),
        upstream=[inputs_fingerprint(videos)],
        units=units,
        stream=stream,
        extra_metadata=frames_metadata(cfg),
        # `output_shard`: the caller already selected the shard's videos; only the part name.
        shard=shard or output_shard,
        force=force,
        on_unit=None if on_video is None else lambda u, rows: on_video(_result_of(u.data, rows)),
        checkpoint_every_s=CHECKPOINT_EVERY_S,
    )
    order = {v.video_id: i for i, v in enumerate(videos)}
    errors = sorted(summary.errors, key=lambda e: order.get(e[0], 0))
    if summary.output == STDIO:
        warnings, cut_short = streamed_warnings, streamed_cut_short
    else:  # from the rows, so resumed and already complete videos report theirs too
        columns = ["video_id", "path", "error", "duration", "decoded_duration"]
        table = read_artifact(summary.output, "frames", columns=columns, note=False).table
        warnings, cut_short = artifact_warnings(table, cfg)
    return ExtractSummary(
        len(videos),
        summary.failed,
        summary.rows - summary.error_rows,
        errors,
        summary.cache_key,
        summary.skipped,
        warnings,
        cut_short,
    )
