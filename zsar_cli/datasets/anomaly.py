"""Readers of UCF-Crime annotations: temporal anomaly spans, and the official split lists.

Input: temporal lines "Abuse028_x264.mp4  Abuse  165  240  -1  -1" (1-based inclusive frame
numbers); split lists `Anomaly_Train.txt` / `Anomaly_Test.txt` (one "Abuse/Abuse028_x264.mp4"
path per line). Output: `AnomalyGT` with 0-based inclusive spans; `ClassificationGT` (the video's
folder is its class, every Normal* folder the class "Normal").
"""

from __future__ import annotations

import re
from pathlib import Path

from zsar_cli.datasets.common import (
    AnomalyGT,
    ClassificationGT,
    _bad,
    _int,
    _lines,
    normalize_label,
    video_key,
)
from zsar_cli.errors import InputError


def read_ucf_crime(path: str | Path) -> AnomalyGT:
    """Lines "Abuse028_x264.mp4  Abuse  165  240  -1  -1": up to two anomalous spans per video,
    1-based inclusive frame numbers, -1 = none. Spans are returned 0-based inclusive so they
    index decoded frames directly.
    """
    path = Path(path)
    spans: dict[str, list[tuple[int, int]]] = {}
    classes: dict[str, str] = {}
    for number, line in _lines(path):
        parts = line.split()
        if len(parts) != 6:
            raise _bad(path, number, f"expected 'VIDEO CLASS S1 E1 S2 E2', got {line!r}")
        vid = video_key(parts[0])
        if vid in spans:
            raise _bad(path, number, f"video {vid!r} listed twice")
        bounds = [_int(path, number, t, "frame number") for t in parts[2:]]
        video_spans: list[tuple[int, int]] = []
        for start, end in (bounds[0:2], bounds[2:4]):
            if start == -1 and end == -1:
                continue
            if start < 1 or end < 1:
                raise _bad(path, number, f"frame numbers are 1-based (got {start} {end})")
            if end < start:
                raise _bad(path, number, f"reversed interval: end {end} < start {start}")
            video_spans.append((start - 1, end - 1))
        spans[vid] = video_spans
        classes[vid] = parts[1]
    if not spans:
        raise InputError(f"{path}: no videos")
    return AnomalyGT(spans, classes, str(path))


# The 13 anomaly classes in the dataset's own spelling and order, then the normal class.
UCF_CRIME_CLASSES: tuple[str, ...] = (
    "Abuse",
    "Arrest",
    "Arson",
    "Assault",
    "Burglary",
    "Explosion",
    "Fighting",
    "RoadAccidents",
    "Robbery",
    "Shooting",
    "Shoplifting",
    "Stealing",
    "Vandalism",
)
UCF_CRIME_NORMAL = "Normal"
# The split lists name the class by folder; the normal videos sit in several folders
# (Normal_Videos_event, Testing_Normal_Videos_Anomaly, Training_Normal_Videos_Anomaly, ...).
_NORMAL_FOLDER = re.compile(r"^(testing_|training_)?normal", re.IGNORECASE)
UCF_CRIME_SPLIT_NAME = re.compile(r"^anomaly_(train|test)\w*\.txt$", re.IGNORECASE)


def ucf_crime_folder_class(folder: str) -> str | None:
    """The class of a split-list folder: an anomaly class, "Normal", or None if neither."""
    if _NORMAL_FOLDER.match(folder):
        return UCF_CRIME_NORMAL
    by_key = {normalize_label(c): c for c in UCF_CRIME_CLASSES}
    return by_key.get(normalize_label(folder))


def read_ucf_crime_split(path: str | Path, any_folder: bool | None = None) -> ClassificationGT:
    """`Anomaly_Train.txt` / `Anomaly_Test.txt`: "Abuse/Abuse028_x264.mp4" per line.

    The class is the folder; every Normal* folder is the class "Normal" (14 classes in all;
    `zsar score --exclude-class Normal` gives the 13-class protocol). The video id is the file
    stem ("Abuse028_x264"), as extract-frames and the temporal annotations name videos.

    `any_folder` (default: whether the file has the official name, Anomaly_Train*.txt or
    Anomaly_Test*.txt) takes any folder as the class, as a stand-in laid out like UCF-Crime
    (`zsar synth --layout ucf-crime`) needs. Otherwise (a renamed file, found by its content)
    a folder that is none of the 14 classes is refused: a typo would become a 15th class.
    """
    path = Path(path)
    if any_folder is None:
        any_folder = UCF_CRIME_SPLIT_NAME.match(path.name) is not None
    labels: dict[str, str] = {}
    foreign = False
    for number, line in _lines(path):
        rel = line.replace("\\", "/")
        parts = [p for p in rel.split("/") if p]
        if len(parts) < 2 or len(line.split()) != 1:
            raise _bad(path, number, f"expected 'CLASS/VIDEO.mp4', got {line!r}")
        label = ucf_crime_folder_class(parts[-2])
        if label is None and any_folder:
            label, foreign = parts[-2], True
        if label is None:
            raise _bad(
                path,
                number,
                f"folder {parts[-2]!r} is not a UCF-Crime class "
                f"({', '.join(UCF_CRIME_CLASSES)} or Normal*)",
            )
        vid = video_key(rel)
        if vid in labels and labels[vid] != label:
            raise _bad(path, number, f"video {vid!r} listed twice with different classes")
        labels[vid] = label
    if not labels:
        raise InputError(f"{path}: no videos")
    if foreign:
        # Not the real classes: the classes are the folders found (sorted), then Normal.
        named = sorted({c for c in labels.values() if c != UCF_CRIME_NORMAL})
        return ClassificationGT(labels, [*named, UCF_CRIME_NORMAL], str(path))
    return ClassificationGT(labels, [*UCF_CRIME_CLASSES, UCF_CRIME_NORMAL], str(path))
