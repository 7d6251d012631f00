"""Stage `extract-frames`: videos → `frames` artifact.

Input: video files, folders (recursive, by extension) and list files (one path per line, or CSV
`video,label`). Output: a `frames` artifact, one row per sampled frame (JPEG/PNG/raw RGB bytes),
with the decoded frame number and its real presentation time; a video that fails is one row with
`error` set, and every other video still completes.

Decoding is streamed: frames go from the ffmpeg pipe to the writer in chunks, so memory does not
grow with video length. With `workers > 1` several videos decode at once while rows are still
written in input order (bounded per-video queues keep memory flat).
"""

from __future__ import annotations

import csv
import hashlib
import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from zsar_cli.artifacts import build_table
from zsar_cli.errors import InputError, VideoError, ZsarError
from zsar_cli.images import encode_image
from zsar_cli.outputs import note_input, scoped
from zsar_cli.runner import Unit, run_stage
from zsar_cli.sharding import Shard
from zsar_cli.stages.extract_frames_config import ExtractConfig
from zsar_cli.video import VIDEO_EXTENSIONS, FrameIndexer, decode, plan_sampling, probe

LIST_EXTENSIONS = frozenset({".txt", ".csv", ".lst", ".list", ".tsv"})
CHUNK_FRAMES = 32  # frames per written batch: small enough to keep memory flat for long videos


@dataclass(frozen=True)
class VideoInput:
    path: Path
    video_id: str
    label: str | None = None


@dataclass(frozen=True)
class DecodedFrame:
    frame_index: int
    timestamp: float
    segment: int
    rgb: np.ndarray


# ---------------------------------------------------------------------------------------------
# Inputs


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS


def _walk_folder(folder: Path) -> list[Path]:
    if not os.access(folder, os.R_OK | os.X_OK):
        raise InputError(f"{folder}: folder is not readable (permission denied)")
    found: list[Path] = []

    def onerror(exc: OSError) -> None:
        raise InputError(f"{exc.filename}: folder is not readable ({exc.strerror})")

    for root, dirs, files in os.walk(folder, onerror=onerror):
        dirs.sort()
        found.extend(Path(root) / f for f in sorted(files) if _is_video(Path(f)))
    return found


def _read_list(list_file: Path) -> list[tuple[Path, str | None]]:
    try:
        text = list_file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{list_file}: cannot read list file ({exc})") from None
    delimiter = "\t" if list_file.suffix.lower() == ".tsv" else ","
    entries: list[tuple[Path, str | None]] = []
    for lineno, row in enumerate(csv.reader(text.splitlines(), delimiter=delimiter), start=1):
        if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        if (
            lineno == 1
            and row[0].strip().lower() in ("video", "path", "file")
            and (len(row) == 1 or row[1].strip().lower() in ("label", "class"))
        ):
            continue  # header
        if len(row) > 2:
            raise InputError(
                f"{list_file}:{lineno}: expected 'path' or 'path,label', got {len(row)} fields"
            )
        raw = Path(row[0].strip())
        path = raw if raw.is_absolute() else list_file.parent / raw
        label = row[1].strip() if len(row) == 2 and row[1].strip() else None
        entries.append((path, label))
    return entries


def resolve_inputs(inputs: Sequence[str | os.PathLike[str]]) -> list[VideoInput]:
    """Expand files, folders and list files into videos with unique ids, in a stable order.

    A missing video stays in the list (it becomes an error row); a missing or unreadable folder or
    list file is an InputError, since nothing sensible can be produced for it.
    """
    items: list[tuple[Path, str | None]] = []
    if not inputs:
        raise InputError("no input videos given")
    for raw in inputs:
        path = Path(raw)
        note_input(path)
        if path.is_dir():
            videos = _walk_folder(path)
            if not videos:
                raise InputError(
                    f"{path}: folder holds no video files "
                    f"({', '.join(sorted(VIDEO_EXTENSIONS)[:6])}, ...)"
                )
            items.extend((v, None) for v in videos)
        elif path.suffix.lower() in LIST_EXTENSIONS:
            if not path.exists():
                raise InputError(f"{path}: no such list file")
            entries = _read_list(path)
            if not entries:
                raise InputError(f"{path}: list file names no videos")
            items.extend(entries)
        else:
            items.append((path, None))
    for video, _ in items:
        note_input(video)
    return _assign_ids(items)


def _assign_ids(items: list[tuple[Path, str | None]]) -> list[VideoInput]:
    stems: dict[str, int] = {}
    for path, _ in items:
        stems[path.stem] = stems.get(path.stem, 0) + 1
    out: list[VideoInput] = []
    seen: set[str] = set()
    for path, label in items:
        video_id = path.stem
        if stems[path.stem] > 1:
            # Same file name in several folders: keep ids unique with the parent folder.
            video_id = f"{path.parent.name}/{path.stem}"
        base, n = video_id, 1
        while video_id in seen:
            n += 1
            video_id = f"{base}#{n}"
        seen.add(video_id)
        out.append(VideoInput(path, video_id, label))
    return out


def inputs_fingerprint(videos: Sequence[VideoInput]) -> str:
    """Identity of the source videos (path, size, mtime), the upstream key of a frames artifact."""
    h = hashlib.sha256()
    for v in videos:
        try:
            st = v.path.stat()
            ident = f"{v.path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{v.label}"
        except OSError:
            ident = f"{v.path}|missing|{v.label}"
        h.update(ident.encode())
    return "videos:" + h.hexdigest()[:32]


# ---------------------------------------------------------------------------------------------
# Decoding one video


def decode_frames(video: VideoInput, config: ExtractConfig) -> Iterator[DecodedFrame]:
    """Sample and decode one video's frames (raises VideoError with a clear reason)."""
    cfg = config.validated()
    info = probe(video.path)
    plan = plan_sampling(
        info,
        num_frames=cfg.num_frames,
        fps=cfg.fps,
        segments=cfg.segments,
        frames_per_segment=cfg.frames_per_segment,
        all_frames=cfg.all_frames,
        start=cfg.start,
        end=cfg.end,
    )
    indexer = FrameIndexer(info)
    per_segment = plan.frames_per_segment
    count = 0
    for pts, rgb in decode(info, plan, cfg.size):
        segment = count // per_segment if per_segment else -1
        yield DecodedFrame(indexer(pts), pts, segment, rgb)
        count += 1
    if count == 0:
        raise VideoError(f"{video.path}: no frames decoded in the requested window")
    if plan.exact_count and plan.count is not None and count < plan.count:
        raise VideoError(
            f"{video.path}: only {count} distinct frames for the {plan.count} requested "
            "(clip too short for this sampling)"
        )


def _frames_table(video: VideoInput, frames: list[DecodedFrame], cfg: ExtractConfig) -> pa.Table:
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
        },
    )


def error_row(video: VideoInput, message: str) -> pa.Table:
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
        },
    )


def _video_tables(video: VideoInput, cfg: ExtractConfig) -> Iterator[pa.Table]:
    """One video's rows in chunks; an error becomes a final error row.

    Exact-count plans (num-frames, segments) are held until complete, so a clip too short for
    them yields only its error row; rate-based plans stream, and a failure part-way is recorded
    as an error row after the frames that did decode.
    """
    chunk: list[DecodedFrame] = []
    hold = cfg.num_frames is not None or cfg.segments is not None
    try:
        for frame in decode_frames(video, cfg):
            chunk.append(frame)
            if not hold and len(chunk) >= CHUNK_FRAMES:
                yield _frames_table(video, chunk, cfg)
                chunk = []
    except ZsarError as exc:
        if hold:
            chunk = []
        if chunk:
            yield _frames_table(video, chunk, cfg)
        yield error_row(video, str(exc))
        return
    if chunk:
        yield _frames_table(video, chunk, cfg)


# ---------------------------------------------------------------------------------------------
# Many videos


@dataclass
class VideoResult:
    video: VideoInput
    frames: int
    error: str | None


_DONE = object()


def iter_frame_tables(
    videos: Sequence[VideoInput],
    config: ExtractConfig,
    on_video: Callable[[VideoResult], None] | None = None,
) -> Iterator[pa.Table]:
    """Rows for all videos in input order; `workers` videos decode concurrently."""
    cfg = config.validated()

    def finish(video: VideoInput, tables: list[pa.Table]) -> None:
        if on_video is None:
            return
        errors = [
            t.column("error")[0].as_py()
            for t in tables
            if t.num_rows == 1 and t.column("error")[0].is_valid
        ]
        frames = sum(t.num_rows for t in tables) - len(errors)
        on_video(VideoResult(video, frames, errors[0] if errors else None))

    if cfg.workers <= 1 or len(videos) <= 1:
        for video in videos:
            seen: list[pa.Table] = []
            for table in _video_tables(video, cfg):
                seen.append(table.select(["error"]))
                yield table
            finish(video, seen)
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
            for table in _video_tables(videos[i], cfg):
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
            for i, video in enumerate(videos):
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
                finish(video, seen)
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


def _result_of(video: VideoInput, table: pa.Table) -> VideoResult:
    errors = [e for e in table.column("error").to_pylist() if e] if table.num_rows else []
    return VideoResult(video, table.num_rows - len(errors), errors[0] if errors else None)


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
    videos = list(videos) if videos is not None else resolve_inputs(inputs)
    for video in videos:
        note_input(video.path)  # also when the caller resolved them
    if shard is not None:
        videos = shard.select(videos)
    units = [Unit(i, v.video_id, v) for i, v in enumerate(videos)]

    def stream(todo: list[Unit]) -> Iterator[tuple[Unit, pa.Table | None]]:
        # iter_frame_tables reports each video once its last rows are out, in input order, so
        # the n-th report closes todo[n] and rows belong to the first unreported video.
        reported: list[int] = [0]
        closed = 0

        def report(_result: VideoResult) -> None:
            reported[0] += 1

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
        extra_metadata={"image_encoding": cfg.image_format},
        # `output_shard`: the caller already selected the shard's videos; only the part name.
        shard=shard or output_shard,
        force=force,
        on_unit=None if on_video is None else lambda u, rows: on_video(_result_of(u.data, rows)),
    )
    order = {v.video_id: i for i, v in enumerate(videos)}
    errors = sorted(summary.errors, key=lambda e: order.get(e[0], 0))
    return ExtractSummary(
        len(videos),
        summary.failed,
        summary.rows - summary.error_rows,
        errors,
        summary.cache_key,
        summary.skipped,
    )
