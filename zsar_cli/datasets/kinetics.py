"""Kinetics-400/600/700 annotation CSVs, as ground truth and as the videos a run reads.

Input: an official annotation CSV, header `label,youtube_id,time_start,time_end,split` (K600 and
K700 add `is_cc`; the K600 test CSV has no `label`), and for extraction the folder the clips were
downloaded to. Output: `KineticsRow`s, each row's video id `{youtube_id}_{start:06d}_{end:06d}`
(the name the standard download scripts give a trimmed clip, so frames, predictions and ground
truth meet on it), the file a row resolves to under a root folder (`ClipFinder`), and
`ClassificationGT` keyed by those ids (`read_kinetics`).

Columns are found by name, so their order does not matter; a malformed row is an InputError
`file:line: reason`, since a silently skipped annotation changes a published number.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from zsar_cli.datasets.common import ClassificationGT, _bad, normalize_label
from zsar_cli.errors import InputError

# The columns that make a CSV a Kinetics annotation file (label and split may be absent).
KINETICS_COLUMNS: tuple[str, ...] = ("youtube_id", "time_start", "time_end")
# What downloaders write: mp4 (re-encoded clips), mkv/webm (youtube-dl's own containers).
CLIP_EXTENSIONS: tuple[str, ...] = (".mp4", ".mkv", ".webm")


def is_kinetics_header(cells: Sequence[str]) -> bool:
    """Whether a CSV's first row is a Kinetics header (youtube_id, time_start, time_end)."""
    names = {c.strip().lower() for c in cells}
    return all(c in names for c in KINETICS_COLUMNS)


def clip_name(youtube_id: str, start: float, end: float) -> str:
    """`{youtube_id}_{start:06d}_{end:06d}`: the trimmed clip's file stem and the video id."""
    return f"{youtube_id}_{int(start):06d}_{int(end):06d}"


@dataclass(frozen=True)
class KineticsRow:
    """One annotated clip: a span of seconds of a YouTube video, with its class when known."""

    youtube_id: str
    time_start: float
    time_end: float
    label: str | None
    split: str | None
    line: int  # 1-based line in the CSV, for messages

    @property
    def video_id(self) -> str:
        return clip_name(self.youtube_id, self.time_start, self.time_end)


def _seconds(path: Path, number: int, text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _bad(path, number, f"{what} {text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise _bad(path, number, f"{what} {text!r} is not a time in seconds (>= 0)")
    return value


def read_kinetics_rows(path: str | os.PathLike[str]) -> list[KineticsRow]:
    """Every row of a Kinetics CSV, in file order (InputError `file:line: reason` if malformed)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    rows: list[KineticsRow] = []
    columns: dict[str, int] | None = None
    try:
        for number, cells in enumerate(csv.reader(text.splitlines()), start=1):
            if not cells or not "".join(cells).strip():
                continue
            if columns is None:
                if not is_kinetics_header(cells):
                    raise _bad(
                        path,
                        number,
                        "not a Kinetics header (expected label,youtube_id,time_start,time_end,"
                        "split)",
                    )
                columns = {c.strip().lower(): i for i, c in enumerate(cells)}
                continue
            if len(cells) != len(columns):
                raise _bad(path, number, f"expected {len(columns)} fields, got {len(cells)}")

            values = {name: cells[i].strip() for name, i in columns.items()}
            youtube_id = values["youtube_id"]
            if not youtube_id:
                raise _bad(path, number, "empty youtube_id")
            start = _seconds(path, number, values["time_start"], "time_start")
            end = _seconds(path, number, values["time_end"], "time_end")
            label = values.get("label") or None
            rows.append(KineticsRow(youtube_id, start, end, label, values.get("split"), number))
    except csv.Error as exc:
        raise InputError(f"{path}: bad CSV ({exc})") from None
    if columns is None:
        raise InputError(f"{path}: empty Kinetics CSV")
    return rows


def read_kinetics(path: str | os.PathLike[str]) -> ClassificationGT:
    """Ground truth of a Kinetics CSV: video id `{youtube_id}_{start:06d}_{end:06d}` → label."""
    path = Path(path)
    labels: dict[str, str] = {}
    classes: dict[str, str] = {}
    for row in read_kinetics_rows(path):
        if row.label is None:
            continue
        vid = row.video_id
        if vid in labels and normalize_label(labels[vid]) != normalize_label(row.label):
            raise _bad(path, row.line, f"clip {vid!r} listed twice with different labels")
        labels[vid] = row.label
        classes.setdefault(normalize_label(row.label), row.label)
    if not labels:
        raise InputError(
            f"{path}: no labelled rows (a test CSV without its label column cannot be scored)"
        )
    return ClassificationGT(labels, sorted(classes.values()), str(path))


@dataclass(frozen=True)
class KineticsClip:
    """Where a row's video is: a trimmed clip (span None: the file is the span), or the
    untrimmed video, read over the row's span."""

    path: Path
    span: tuple[float, float] | None


class ClipFinder:
    """Finds each row's file under a root folder by the standard names.

    Looks for `{youtube_id}_{start:06d}_{end:06d}` (.mp4/.mkv/.webm) in `root/<label>/`,
    `root/<label with spaces as _>/` and `root/`, then for the untrimmed `{youtube_id}.*` in the
    same folders. Each folder is listed once (tens of thousands of rows would otherwise cost
    that many stat calls, slow on network file systems).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._listings: dict[Path, frozenset[str]] = {}

    def _names(self, folder: Path) -> frozenset[str]:
        if folder not in self._listings:
            try:
                self._listings[folder] = frozenset(os.listdir(folder))
            except OSError:
                self._listings[folder] = frozenset()
        return self._listings[folder]

    def folders(self, label: str | None) -> list[Path]:
        out: list[Path] = []
        for name in (label, label.replace(" ", "_")) if label else ():
            if name and self.root / name not in out:
                out.append(self.root / name)
        out.append(self.root)
        return out

    def locate(self, row: KineticsRow) -> KineticsClip | None:
        """The row's file, or None when it is not there (not downloaded)."""
        folders = self.folders(row.label)
        for stem, span in (
            (row.video_id, None),
            (row.youtube_id, (row.time_start, row.time_end)),
        ):
            for folder in folders:
                names = self._names(folder)
                for ext in CLIP_EXTENSIONS:
                    if stem + ext in names:
                        return KineticsClip(folder / (stem + ext), span)
        return None

    def expected(self, row: KineticsRow) -> Path:
        """Where the row's trimmed clip would be (for the 'not downloaded' message)."""
        return self.folders(row.label)[0] / (row.video_id + CLIP_EXTENSIONS[0])
