"""The videos a run reads: files, folders (recursive, by extension) and list files (one path per
line, or CSV `video,label`) → `VideoInput`s with unique ids, in a stable order, and the
fingerprint that keys a frames artifact to them. Every path is noted as an input of the run
(`zsar_cli.outputs`), so no output can overwrite it.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zsar_cli.errors import InputError
from zsar_cli.outputs import note_input
from zsar_cli.video import VIDEO_EXTENSIONS

LIST_EXTENSIONS = frozenset({".txt", ".csv", ".lst", ".list", ".tsv"})


@dataclass(frozen=True)
class VideoInput:
    path: Path
    video_id: str
    label: str | None = None


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
