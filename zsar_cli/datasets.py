"""Readers for standard annotation formats (DESIGN §6), used as ground truth by `zsar score`.

Input: UCF101 split lists (`classInd.txt`, `testlist0N.txt`), HMDB51 split files
(`<class>_test_splitN.txt`), THUMOS14 per-class files (`<Class>_test.txt` + `Ambiguous_test.txt`),
ActivityNet JSON (ground truth `database{...}` and predictions `results{...}`), UCF-Crime temporal
annotation lines, `video,label` list files, and zsar artifacts (`frames` label column,
`predictions` true_label column).
Output: plain in-memory ground truth (`ClassificationGT`, `LocalizationGT`, `AnomalyGT`) and, for
ActivityNet predictions, an `intervals` table.

Every reader rejects a malformed line with `file:line: reason` (InputError): a silently skipped
annotation changes a published number.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from zsar_cli.errors import InputError

GT_FORMATS: tuple[str, ...] = (
    "ucf101",
    "hmdb51",
    "thumos14",
    "activitynet",
    "ucf_crime",
    "list",
    "artifact",
)

# Which task each ground-truth format can serve.
CLASSIFICATION_FORMATS = ("ucf101", "hmdb51", "list", "artifact", "activitynet", "thumos14")
LOCALIZATION_FORMATS = ("thumos14", "activitynet")
ANOMALY_FORMATS = ("ucf_crime",)

AMBIGUOUS = "Ambiguous"
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


# ---------------------------------------------------------------------------------------------
# UCF101


def read_ucf101_classind(path: str | Path) -> list[str]:
    """`classInd.txt`: lines "1 ApplyEyeMakeup", indices 1..N in order."""
    path = Path(path)
    classes: list[str] = []
    for number, line in _lines(path):
        parts = line.split()
        if len(parts) != 2:
            raise _bad(path, number, f"expected 'INDEX CLASS', got {line!r}")
        index = _int(path, number, parts[0], "class index")
        if index != len(classes) + 1:
            raise _bad(
                path, number, f"class index {index} out of order (expected {len(classes) + 1})"
            )
        classes.append(parts[1])
    if not classes:
        raise InputError(f"{path}: no classes")
    return classes


def read_ucf101_split(path: str | Path, classes: list[str] | None = None) -> ClassificationGT:
    """`testlist0N.txt` (path only) or `trainlist0N.txt` (path + 1-based class index).

    The label comes from the folder part of the path
    ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi").
    Matching to classInd is normalised, so the file names spelled "HandStandPushups" resolve to
    the class "HandstandPushups".
    """
    path = Path(path)
    if classes is None:
        ind = path.parent / "classInd.txt"
        classes = read_ucf101_classind(ind) if ind.is_file() else None
    by_key = {normalize_label(c): c for c in classes or []}
    labels: dict[str, str] = {}
    for number, line in _lines(path):
        parts = line.split()
        if len(parts) not in (1, 2):
            raise _bad(path, number, f"expected 'CLASS/VIDEO.avi [INDEX]', got {line!r}")
        rel = parts[0].replace("\\", "/")
        if "/" not in rel:
            raise _bad(path, number, f"{rel!r} has no class folder (expected CLASS/VIDEO.avi)")
        folder = rel.split("/")[-2]
        if by_key:
            label = by_key.get(normalize_label(folder))
            if label is None:
                raise _bad(path, number, f"class {folder!r} is not in classInd.txt")
            if len(parts) == 2:
                index = _int(path, number, parts[1], "class index")
                if not 1 <= index <= len(classes or []) or (classes or [])[index - 1] != label:
                    raise _bad(
                        path, number, f"class index {index} does not match folder {folder!r}"
                    )
        else:
            label = folder
        vid = video_key(rel)
        if vid in labels and labels[vid] != label:
            raise _bad(path, number, f"video {vid!r} listed twice with different classes")
        labels[vid] = label
    if not labels:
        raise InputError(f"{path}: no videos")
    return ClassificationGT(
        labels, list(classes) if classes else sorted(set(labels.values())), str(path)
    )


def _read_ucf101_folder(folder: Path, split: int) -> ClassificationGT:
    test = folder / f"testlist{split:02d}.txt"
    if not test.is_file():
        raise InputError(f"{folder}: no testlist{split:02d}.txt (choose --split 1, 2 or 3)")
    return read_ucf101_split(test)


# ---------------------------------------------------------------------------------------------
# HMDB51

_HMDB_NAME = re.compile(r"^(?P<label>.+)_test_split(?P<split>\d+)\.txt$")


def read_hmdb51_split_file(path: str | Path, subset: int = 2) -> dict[str, str]:
    """`<class>_test_splitN.txt`: lines "video.avi 1|2|0" (1 train, 2 test, 0 unused)."""
    path = Path(path)
    m = _HMDB_NAME.match(path.name)
    if m is None:
        raise InputError(f"{path}: HMDB51 split files are named <class>_test_split<N>.txt")
    label = m.group("label")
    labels: dict[str, str] = {}
    for number, line in _lines(path):
        parts = line.split()
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise _bad(path, number, f"expected 'VIDEO.avi 0|1|2', got {line!r}")
        if int(parts[1]) == subset:
            labels[video_key(parts[0])] = label
    return labels


def read_hmdb51(path: str | Path, split: int = 1) -> ClassificationGT:
    """One split file, or a folder of them (all classes of split N); test videos only."""
    path = Path(path)
    files = (
        sorted(
            p
            for p in path.iterdir()
            if (m := _HMDB_NAME.match(p.name)) and int(m.group("split")) == split
        )
        if path.is_dir()
        else [path]
    )
    if not files:
        raise InputError(f"{path}: no *_test_split{split}.txt files")
    labels: dict[str, str] = {}
    classes: list[str] = []
    for f in files:
        part = read_hmdb51_split_file(f)
        classes.append(_HMDB_NAME.match(f.name).group("label"))  # type: ignore[union-attr]
        for vid, label in part.items():
            if vid in labels and labels[vid] != label:
                raise InputError(f"{f}: video {vid!r} is also a test video of {labels[vid]!r}")
            labels[vid] = label
    if not labels:
        raise InputError(f"{path}: no test videos (marked 2) in split {split}")
    return ClassificationGT(labels, classes, str(path))


# ---------------------------------------------------------------------------------------------
# THUMOS14

_THUMOS_NAME = re.compile(r"^(?P<label>.+)_(?P<subset>test|val|validation)\.txt$", re.IGNORECASE)


def read_thumos14(path: str | Path) -> LocalizationGT:
    """A `<Class>_test.txt` file or a folder of them: lines "video start end" (seconds).

    `Ambiguous_test.txt` holds spans that are neither positives nor negatives; they are kept in
    `ambiguous` (the THUMOS14 devkit ignores false positives that overlap them).
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if _THUMOS_NAME.match(p.name))
        if not files:
            raise InputError(f"{path}: no <Class>_test.txt files")
    else:
        files = [path]
    vids: list[str] = []
    labels: list[str] = []
    starts: list[float] = []
    ends: list[float] = []
    classes: list[str] = []
    ambiguous: dict[str, list[tuple[float, float]]] = {}
    for f in files:
        m = _THUMOS_NAME.match(f.name)
        label = m.group("label") if m else f.stem
        is_amb = normalize_label(label) == normalize_label(AMBIGUOUS)
        if not is_amb:
            classes.append(label)
        for number, line in _lines(f):
            parts = line.split()
            if len(parts) != 3:
                raise _bad(f, number, f"expected 'VIDEO START END', got {line!r}")
            start = _float(f, number, parts[1], "start")
            end = _float(f, number, parts[2], "end")
            _check_span(f, number, start, end)
            vid = video_key(parts[0])
            if is_amb:
                ambiguous.setdefault(vid, []).append((start, end))
                continue
            vids.append(vid)
            labels.append(label)
            starts.append(start)
            ends.append(end)
    return LocalizationGT(
        vids,
        labels,
        np.asarray(starts, float),
        np.asarray(ends, float),
        classes,
        sorted(set(vids)),
        ambiguous,
        source=str(path),
    )


# ---------------------------------------------------------------------------------------------
# ActivityNet JSON


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None


def _segment(path: Path, where: str, record: Any, check: bool = True) -> tuple[float, float]:
    seg = record.get("segment") if isinstance(record, dict) else None
    if not isinstance(seg, (list, tuple)) or len(seg) != 2:
        raise InputError(f"{path}: {where}: 'segment' must be [start, end]")
    try:
        start, end = float(seg[0]), float(seg[1])
    except (TypeError, ValueError):
        raise InputError(f"{path}: {where}: segment {seg!r} is not two numbers") from None
    if check:
        if not (math.isfinite(start) and math.isfinite(end)):
            raise InputError(f"{path}: {where}: segment {seg!r} is not finite")
        if start < 0:
            raise InputError(f"{path}: {where}: negative start time {start:g}")
        if end < start:
            raise InputError(f"{path}: {where}: reversed segment {seg!r}")
    return start, end


def read_activitynet(path: str | Path, subset: str | None = None) -> LocalizationGT:
    """ActivityNet ground truth: `database{vid:{subset,duration,annotations:[{segment,label}]}}`.

    `subset` keeps only videos of that subset (None: all). The official evaluation uses
    "validation"; zsar's synthetic world writes one subset, so all is the default here.
    """
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("database"), dict):
        raise InputError(f"{path}: not ActivityNet ground truth (no 'database' object)")
    vids: list[str] = []
    labels: list[str] = []
    starts: list[float] = []
    ends: list[float] = []
    classes: list[str] = []
    seen: set[str] = set()
    videos: list[str] = []
    durations: dict[str, float] = {}
    for vid, entry in data["database"].items():
        where = f"database[{vid!r}]"
        if not isinstance(entry, dict):
            raise InputError(f"{path}: {where}: expected an object")
        if subset is not None and entry.get("subset") != subset:
            continue
        videos.append(vid)
        if entry.get("duration") is not None:
            try:
                durations[vid] = float(entry["duration"])
            except (TypeError, ValueError):
                raise InputError(f"{path}: {where}: duration is not a number") from None
        anns = entry.get("annotations", [])
        if not isinstance(anns, list):
            raise InputError(f"{path}: {where}: 'annotations' must be a list")
        for i, ann in enumerate(anns):
            here = f"{where}.annotations[{i}]"
            label = ann.get("label") if isinstance(ann, dict) else None
            if not isinstance(label, str) or not label:
                raise InputError(f"{path}: {here}: missing 'label'")
            start, end = _segment(path, here, ann)
            if normalize_label(label) not in seen:
                seen.add(normalize_label(label))
                classes.append(label)
            vids.append(vid)
            labels.append(label)
            starts.append(start)
            ends.append(end)
    if not videos:
        raise InputError(f"{path}: no videos" + (f" in subset {subset!r}" if subset else ""))
    return LocalizationGT(
        vids,
        labels,
        np.asarray(starts, float),
        np.asarray(ends, float),
        classes,
        videos,
        durations=durations,
        source=str(path),
    )


def read_activitynet_predictions(path: str | Path) -> dict[str, list[Any]]:
    """ActivityNet predictions `results{vid:[{label,score,segment}]}` as intervals columns.

    Reversed or negative segments are kept (the scorer counts them as invalid predictions, never
    as hits) so that a bad file is reported rather than silently improved.
    """
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise InputError(f"{path}: not ActivityNet predictions (no 'results' object)")
    cols: dict[str, list[Any]] = {k: [] for k in ("video_id", "label", "t_start", "t_end", "score")}
    for vid, items in data["results"].items():
        if not isinstance(items, list):
            raise InputError(f"{path}: results[{vid!r}]: expected a list")
        for i, item in enumerate(items):
            where = f"results[{vid!r}][{i}]"
            if not isinstance(item, dict) or not isinstance(item.get("label"), str):
                raise InputError(f"{path}: {where}: missing 'label'")
            try:
                score = float(item["score"])
            except (KeyError, TypeError, ValueError):
                raise InputError(f"{path}: {where}: missing or non-numeric 'score'") from None
            start, end = _segment(path, where, item, check=False)
            cols["video_id"].append(vid)
            cols["label"].append(item["label"])
            cols["t_start"].append(start)
            cols["t_end"].append(end)
            cols["score"].append(score)
    return cols


# ---------------------------------------------------------------------------------------------
# UCF-Crime


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


# ---------------------------------------------------------------------------------------------
# List files and zsar artifacts


def read_label_list(path: str | Path) -> ClassificationGT:
    """`video,label` CSV (optional header), as written by `zsar synth` (trimmed/list.csv)."""
    path = Path(path)
    labels: dict[str, str] = {}
    classes: list[str] = []
    seen: set[str] = set()
    rows = list(_lines(path))
    for number, line in rows:
        try:
            cells = next(csv.reader([line]))
        except csv.Error as exc:
            raise _bad(path, number, f"bad CSV ({exc})") from None
        if [c.strip().lower() for c in cells] == ["video", "label"]:
            continue
        if len(cells) != 2 or not cells[1].strip():
            raise _bad(path, number, f"expected 'video,label', got {line!r}")
        vid, label = video_key(cells[0]), cells[1].strip()
        if vid in labels and labels[vid] != label:
            raise _bad(path, number, f"video {vid!r} listed twice with different labels")
        labels[vid] = label
        if normalize_label(label) not in seen:
            seen.add(normalize_label(label))
            classes.append(label)
    if not labels:
        raise InputError(f"{path}: no labelled videos")
    return ClassificationGT(labels, sorted(classes), str(path))


def read_artifact_labels(path: str | Path) -> ClassificationGT:
    """Video labels from a zsar artifact: `frames`/`embeddings` label or predictions true_label."""
    from zsar_cli.artifacts import read_artifact

    art = read_artifact(path, ("frames", "embeddings", "predictions"))
    column = "true_label" if art.kind == "predictions" else "label"
    if column not in art.table.schema.names:
        raise InputError(f"{path}: {art.kind} artifact has no {column!r} column to score against")
    ids = art.table.column("video_id").to_pylist()
    values = art.table.column(column).to_pylist()
    labels: dict[str, str] = {}
    for vid, label in zip(ids, values, strict=True):
        if label is None:
            continue
        if vid in labels and labels[vid] != label:
            raise InputError(f"{path}: video {vid!r} has two labels ({labels[vid]!r}, {label!r})")
        labels[vid] = label
    if not labels:
        raise InputError(f"{path}: no {column} values")
    return ClassificationGT(labels, sorted(set(labels.values())), str(path))


# ---------------------------------------------------------------------------------------------
# Detection


def _sniff_txt(path: Path) -> str:
    name = path.name
    if name.lower().startswith(("testlist", "trainlist")):
        return "ucf101"
    if name.lower() == "classind.txt":
        raise InputError(
            f"{path}: classInd.txt names classes only; give testlist0N.txt or the folder"
        )
    if _HMDB_NAME.match(name):
        return "hmdb51"
    if _THUMOS_NAME.match(name):
        return "thumos14"
    for _number, line in _lines(path):
        parts = line.split()
        if len(parts) == 6 and all(re.fullmatch(r"-?\d+", p) for p in parts[2:]):
            return "ucf_crime"
        if len(parts) == 3:
            return "thumos14"
        break
    raise InputError(f"{path}: cannot tell the annotation format; pass --gt-format")


def detect_gt_format(path: str | Path) -> str:
    """Guess the annotation format of a file or folder (override with --gt-format)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        names = [p.name for p in path.iterdir()]
        if "classInd.txt" in names or any(n.lower().startswith("testlist") for n in names):
            return "ucf101"
        if any(_HMDB_NAME.match(n) for n in names):
            return "hmdb51"
        if any(_THUMOS_NAME.match(n) for n in names):
            return "thumos14"
        if any(n.endswith(".parquet") for n in names):
            return "artifact"
        raise InputError(f"{path}: folder holds no known annotation files; pass --gt-format")
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "activitynet"
    if suffix in (".parquet", ".arrow"):
        return "artifact"
    if suffix == ".csv":
        return "list"
    return _sniff_txt(path)


GroundTruth = ClassificationGT | LocalizationGT | AnomalyGT


def load_ground_truth(
    path: str | Path,
    fmt: str | None = None,
    split: int = 1,
    subset: str | None = None,
) -> tuple[str, GroundTruth]:
    """Read ground truth of any supported format; returns (format, ground truth)."""
    fmt = fmt or detect_gt_format(path)
    if fmt not in GT_FORMATS:
        raise InputError(f"--gt-format {fmt!r}: unknown (known: {', '.join(GT_FORMATS)})")
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file or folder")
    if fmt == "ucf101":
        gt: GroundTruth = _read_ucf101_folder(p, split) if p.is_dir() else read_ucf101_split(p)
    elif fmt == "hmdb51":
        gt = read_hmdb51(p, split)
    elif fmt == "thumos14":
        gt = read_thumos14(p)
    elif fmt == "activitynet":
        gt = read_activitynet(p, subset)
    elif fmt == "ucf_crime":
        gt = read_ucf_crime(p)
    elif fmt == "list":
        gt = read_label_list(p)
    else:
        gt = read_artifact_labels(p)
    return fmt, gt
