"""Readers of temporal (action localization) ground truth and predictions.

Input: THUMOS14 per-class files (`<Class>_test.txt` + `Ambiguous_test.txt`) and ActivityNet JSON
(ground truth `database{...}`, predictions `results{...}`). Output: `LocalizationGT` and, for
ActivityNet predictions, the columns of an `intervals` table.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from zsar_cli.datasets.common import (
    LocalizationGT,
    _bad,
    _check_span,
    _float,
    _lines,
    normalize_label,
    video_key,
)
from zsar_cli.errors import InputError

AMBIGUOUS = "Ambiguous"


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
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:  # was an internal error (found by tests/test_fuzz.py)
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except RecursionError:
        raise InputError(f"{path}: JSON nested too deeply") from None
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
