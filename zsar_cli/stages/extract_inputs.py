"""The videos a run reads: files, folders (recursive, by extension), list files and Kinetics
annotation CSVs → `VideoInput`s with unique ids, in a stable order, and the fingerprint that keys
a frames artifact to them. Every path is noted as an input of the run (`zsar_cli.outputs`), so
no output can overwrite it.

List files: one path per line, or CSV `path,label` or `path,label,start,end` (seconds of the
video; the label may be empty; header `video,label[,start,end]` or `path,...` allowed). A row
with a span is read over [start, end) only, and its id names the span: `{stem}_{start}_{end}`
with whole seconds as 6 digits (`clip_000012_000022`, the Kinetics naming), fractions kept
(`clip_000001.5_000003`). Kinetics CSVs (`label,youtube_id,time_start,time_end,split`) resolve
each row to its downloaded file under a root folder (`zsar_cli.datasets.kinetics`).
"""

from __future__ import annotations

import csv
import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zsar_cli.datasets.kinetics import ClipFinder, is_kinetics_header, read_kinetics_rows
from zsar_cli.errors import InputError, VideoError
from zsar_cli.outputs import note_input
from zsar_cli.video import VIDEO_EXTENSIONS, VideoInfo

LIST_EXTENSIONS = frozenset({".txt", ".csv", ".lst", ".list", ".tsv"})
_HEADER_PATH = ("video", "path", "file")
_HEADER_LABEL = ("label", "class")


@dataclass(frozen=True)
class VideoInput:
    """One video of a run. `start`/`end`: the span of it to read (seconds of the video, both
    set or neither). `error`: why it cannot be read, known before decoding (a Kinetics clip not
    downloaded, a reversed span); such a video is an error row."""

    path: Path
    video_id: str
    label: str | None = None
    start: float | None = None
    end: float | None = None
    error: str | None = None

    @property
    def span(self) -> tuple[float, float] | None:
        if self.start is None or self.end is None:
            return None
        return self.start, self.end


@dataclass(frozen=True)
class _Entry:
    """A video before ids are assigned (`video_id` set: the id is given, e.g. Kinetics)."""

    path: Path
    label: str | None = None
    start: float | None = None
    end: float | None = None
    video_id: str | None = None
    error: str | None = None


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


def _read_text(list_file: Path) -> str:
    try:
        return list_file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{list_file}: cannot read list file ({exc})") from None


def _first_row(text: str, delimiter: str) -> list[str]:
    for row in csv.reader(text.splitlines(), delimiter=delimiter):
        if row and row[0].strip() and not row[0].lstrip().startswith("#"):
            return row
    return []


def _is_header(row: list[str]) -> bool:
    return row[0].strip().lower() in _HEADER_PATH and (
        len(row) == 1 or row[1].strip().lower() in _HEADER_LABEL
    )


def _span_seconds(list_file: Path, lineno: int, text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{list_file}:{lineno}: {what} {text.strip()!r} is not a number") from None
    if not math.isfinite(value):
        raise InputError(f"{list_file}:{lineno}: {what} {text.strip()!r} is not finite")
    return value


def span_error(where: str, start: float, end: float) -> str | None:
    """Why a span cannot be read whatever the video holds (None when it can)."""
    if start < 0:
        return f"{where}: span start {start:g} s is before the video's start"
    if end <= start:
        return f"{where}: span end {end:g} s is not after its start {start:g} s"
    return None


def _read_list(list_file: Path, root: Path | None = None) -> list[_Entry]:
    text = _read_text(list_file)
    delimiter = "\t" if list_file.suffix.lower() == ".tsv" else ","
    if is_kinetics_header(_first_row(text, delimiter)):
        return _read_kinetics_list(list_file, root)
    entries: list[_Entry] = []
    for lineno, row in enumerate(csv.reader(text.splitlines(), delimiter=delimiter), start=1):
        if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        if lineno == 1 and _is_header(row):
            continue
        if len(row) not in (1, 2, 4):
            raise InputError(
                f"{list_file}:{lineno}: expected 'path', 'path,label' or "
                f"'path,label,start,end', got {len(row)} fields"
            )
        raw = Path(row[0].strip())
        path = raw if raw.is_absolute() else list_file.parent / raw
        label = row[1].strip() if len(row) >= 2 and row[1].strip() else None
        start = end = None
        error = None
        if len(row) == 4:
            start = _span_seconds(list_file, lineno, row[2], "start")
            end = _span_seconds(list_file, lineno, row[3], "end")
            error = span_error(f"{list_file}:{lineno}", start, end)
        entries.append(_Entry(path, label, start, end, error=error))
    return entries


def _read_kinetics_list(csv_file: Path, root: Path | None) -> list[_Entry]:
    """A Kinetics CSV's rows as videos: each row's downloaded file under `root` (default: the
    CSV's folder); a row whose file is absent is kept, as an error row to be ("not
    downloaded": common in Kinetics, where YouTube videos disappear)."""
    root = root if root is not None else csv_file.parent
    if not root.is_dir():
        raise InputError(f"--root {root}: no such folder (where the Kinetics clips are)")
    finder = ClipFinder(root)
    entries: list[_Entry] = []
    for row in read_kinetics_rows(csv_file):
        clip = finder.locate(row)
        where = f"{csv_file}:{row.line}"
        if clip is None:
            missing = (
                f"{where}: clip {row.video_id} not downloaded "
                f"(no {row.video_id} or {row.youtube_id} .mp4/.mkv/.webm in "
                f"{', '.join(str(f) for f in finder.folders(row.label))})"
            )
            path = finder.expected(row)
            entries.append(_Entry(path, row.label, video_id=row.video_id, error=missing))
        elif clip.span is None:  # the trimmed clip: all of it
            entries.append(_Entry(clip.path, row.label, video_id=row.video_id))
        else:  # the untrimmed video, over the row's span
            start, end = clip.span
            error = span_error(where, start, end)
            entries.append(_Entry(clip.path, row.label, start, end, row.video_id, error))
    return entries


# A span may end this far past the container's claimed end (durations differ by a frame or a
# rounded audio track); further is a span outside the video.
SPAN_END_MARGIN_S = 1.0


def sample_window(
    video: VideoInput, info: VideoInfo, start: float | None, end: float | None
) -> tuple[float | None, float | None]:
    """The seconds of the video to sample: the row's span (VideoError when it lies outside the
    video), narrowed by --start/--end (`start`, `end`); those alone without a span."""
    span = video.span
    if span is None:
        return start, end
    lo, hi = span
    if lo >= info.duration:
        raise VideoError(
            f"{video.path}: span {lo:g}-{hi:g} s starts after the video ends "
            f"({info.duration:.3f} s)"
        )
    if hi > info.duration + SPAN_END_MARGIN_S:
        raise VideoError(
            f"{video.path}: span {lo:g}-{hi:g} s ends after the video does ({info.duration:.3f} s)"
        )
    return max(lo, start or 0.0), hi if end is None else min(hi, end)


def resolve_inputs(
    inputs: Sequence[str | os.PathLike[str]], root: str | os.PathLike[str] | None = None
) -> list[VideoInput]:
    """Expand files, folders and list files into videos with unique ids, in a stable order.

    A missing video stays in the list (it becomes an error row); a missing or unreadable folder or
    list file is an InputError, since nothing sensible can be produced for it. `root`: where
    the clips of a Kinetics CSV are (default: the CSV's folder).
    """
    items: list[_Entry] = []
    if not inputs:
        raise InputError("no input videos given")
    root_path = Path(root) if root is not None else None
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
            items.extend(_Entry(v) for v in videos)
        elif path.suffix.lower() in LIST_EXTENSIONS:
            if not path.exists():
                raise InputError(f"{path}: no such list file")
            entries = _read_list(path, root_path)
            if not entries:
                raise InputError(f"{path}: list file names no videos")
            items.extend(entries)
        else:
            items.append(_Entry(path))
    for item in items:
        note_input(item.path)
    return _assign_ids(items)


def _seconds_text(value: float) -> str:
    """6-digit whole seconds, as Kinetics names clips; a fraction kept (trailing zeros off)."""
    if float(value).is_integer():
        return f"{int(value):06d}"
    return f"{value:010.3f}".rstrip("0")


def span_suffix(start: float, end: float) -> str:
    return f"_{_seconds_text(start)}_{_seconds_text(end)}"


def _assign_ids(items: list[_Entry]) -> list[VideoInput]:
    # Distinct files per stem: the same file listed twice (two spans of it) is no name clash.
    stems: dict[str, set[Path]] = {}
    for item in items:
        if item.video_id is None:
            stems.setdefault(item.path.stem, set()).add(item.path)
    out: list[VideoInput] = []
    seen: set[str] = set()
    for item in items:
        path = item.path
        video_id = item.video_id
        if video_id is None:
            video_id = path.stem
            if len(stems[path.stem]) > 1:
                # Same file name in several folders: keep ids unique with the parent folder.
                video_id = f"{path.parent.name}/{path.stem}"
            if item.start is not None and item.end is not None:
                video_id += span_suffix(item.start, item.end)
        base, n = video_id, 1
        while video_id in seen:
            n += 1
            video_id = f"{base}#{n}"
        seen.add(video_id)
        out.append(VideoInput(path, video_id, item.label, item.start, item.end, item.error))
    return out


def inputs_fingerprint(videos: Sequence[VideoInput]) -> str:
    """Identity of the source videos (path, size, mtime, label, span), the upstream key of a
    frames artifact. The span enters only when set, so span-less runs keep their keys."""
    h = hashlib.sha256()
    for v in videos:
        try:
            st = v.path.stat()
            ident = f"{v.path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{v.label}"
        except OSError:
            ident = f"{v.path}|missing|{v.label}"
        if v.span is not None:
            ident += f"|span={v.start!r},{v.end!r}"
        h.update(ident.encode())
    return "videos:" + h.hexdigest()[:32]
