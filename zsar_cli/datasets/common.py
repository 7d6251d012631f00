"""What every ground-truth reader shares: label and video keys, the GT containers, line parsing.

Input: annotation text files (read line by line, with 1-based line numbers). Output: the
in-memory ground truth types (`ClassificationGT`, `LocalizationGT`, `AnomalyGT`), the matching keys
`normalize_label` and `video_key`, and the `file:line: reason` InputErrors readers raise.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zsar_cli.errors import InputError

_VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".webm", ".mov", ".mpg", ".mpeg", ".m4v", ".flv", ".wmv"}
_SEPARATORS = re.compile(r"[\s_\-]+")


def normalize_label(label: str) -> str:
    """Matching key of a label: case-insensitive, spaces/underscores/hyphens equivalent.

    Separators are dropped rather than unified so that CamelCase dataset names
    ("ApplyEyeMakeup") also meet spaced label files ("apply eye makeup"), and UCF101's
    "HandStandPushups" file names meet its class "HandstandPushups".
    """
    return _SEPARATORS.sub("", label.strip().lower())


def video_key(name: str) -> str:
    """Video id of a path or name: the file stem (extension dropped only if it is a video's)."""
    base = name.strip().replace("\\", "/").rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    if dot and stem and f".{ext.lower()}" in _VIDEO_EXTS:
        return stem
    return base


# ---------------------------------------------------------------------------------------------
# Ground-truth containers


@dataclass
class ClassificationGT:
    """One label per video. `classes` keeps the dataset's own spelling and order."""

    labels: dict[str, str]
    classes: list[str]
    source: str = ""

    def __post_init__(self) -> None:
        seen = {normalize_label(c) for c in self.classes}
        for label in self.labels.values():
            if normalize_label(label) not in seen:
                seen.add(normalize_label(label))
                self.classes.append(label)


@dataclass
class LocalizationGT:
    """Action instances (seconds) per video; `ambiguous` spans (THUMOS14) per video."""

    video_id: list[str]
    label: list[str]
    t_start: np.ndarray
    t_end: np.ndarray
    classes: list[str]
    videos: list[str]
    ambiguous: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    source: str = ""

    def to_classification(self) -> ClassificationGT:
        """Untrimmed GT as video labels: the label covering the most time in each video."""
        cover: dict[str, dict[str, float]] = {}
        for vid, lab, s, e in zip(self.video_id, self.label, self.t_start, self.t_end, strict=True):
            cover.setdefault(vid, {}).setdefault(lab, 0.0)
            cover[vid][lab] += float(e - s)
        labels = {vid: max(c.items(), key=lambda kv: kv[1])[0] for vid, c in cover.items()}
        return ClassificationGT(labels, list(self.classes), self.source)


@dataclass
class AnomalyGT:
    """UCF-Crime style: per video, anomalous spans as 0-based inclusive decoded frame numbers."""

    spans: dict[str, list[tuple[int, int]]]
    classes: dict[str, str]
    source: str = ""


# ---------------------------------------------------------------------------------------------
# Line plumbing


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank, non-comment lines with their 1-based line numbers."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line and not line.startswith("#"):
            yield number, line


def _bad(path: Path, number: int, reason: str) -> InputError:
    return InputError(f"{path}:{number}: {reason}")


def _float(path: Path, number: int, text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _bad(path, number, f"{what} {text!r} is not a number") from None
    if not math.isfinite(value):
        raise _bad(path, number, f"{what} {text!r} is not finite")
    return value


def _int(path: Path, number: int, text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _bad(path, number, f"{what} {text!r} is not an integer") from None


def _check_span(path: Path, number: int, start: float, end: float) -> None:
    if start < 0:
        raise _bad(path, number, f"negative start time {start:g}")
    if end < start:
        raise _bad(path, number, f"reversed interval: end {end:g} < start {start:g}")
