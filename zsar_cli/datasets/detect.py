"""Which annotation format a path holds, and reading ground truth of any format.

Input: an annotation file or folder, and optionally `--gt-format`, `--split`, `--subset`.
Output: the format name (`detect_gt_format`) and (format, ground truth) from `load_ground_truth`.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from zsar_cli.datasets.anomaly import (
    UCF_CRIME_SPLIT_NAME,
    read_ucf_crime,
    read_ucf_crime_split,
    ucf_crime_folder_class,
)
from zsar_cli.datasets.classification import (
    _HMDB_NAME,
    _read_ucf101_folder,
    read_artifact_labels,
    read_hmdb51,
    read_label_list,
    read_ucf101_split,
)
from zsar_cli.datasets.common import AnomalyGT, ClassificationGT, LocalizationGT, _lines
from zsar_cli.datasets.grounding import GroundingGT, is_grounding_line, read_charades_sta
from zsar_cli.datasets.kinetics import is_kinetics_header, read_kinetics
from zsar_cli.datasets.temporal import _THUMOS_NAME, read_activitynet, read_thumos14
from zsar_cli.errors import InputError

GT_FORMATS: tuple[str, ...] = (
    "ucf101",
    "hmdb51",
    "thumos14",
    "activitynet",
    "ucf_crime",
    "ucf_crime_split",
    "charades_sta",
    "list",
    "artifact",
    "kinetics",
)

# Which task each ground-truth format can serve.
CLASSIFICATION_FORMATS = (
    "ucf101",
    "hmdb51",
    "list",
    "artifact",
    "activitynet",
    "thumos14",
    "ucf_crime_split",
    "kinetics",
)
LOCALIZATION_FORMATS = ("thumos14", "activitynet")
GROUNDING_FORMATS = ("charades_sta",)
ANOMALY_FORMATS = ("ucf_crime",)


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
    if UCF_CRIME_SPLIT_NAME.match(name):  # before THUMOS14: "Anomaly_Test.txt" is <X>_test.txt
        return "ucf_crime_split"
    # Before THUMOS14: "charades_sta_test.txt" is <X>_test.txt, and its "VIDEO 1.0 2.0##..."
    # lines have three fields before the sentence.
    first = next(_lines(path), None)
    if first is not None and is_grounding_line(first[1]):
        return "charades_sta"
    if _THUMOS_NAME.match(name):
        return "thumos14"
    for _number, line in _lines(path):
        parts = line.split()
        if _is_ucf_crime_split_line(parts):
            return "ucf_crime_split"
        if len(parts) == 6 and all(re.fullmatch(r"-?\d+", p) for p in parts[2:]):
            return "ucf_crime"
        if len(parts) == 3:
            return "thumos14"
        break
    raise InputError(f"{path}: cannot tell the annotation format; pass --gt-format")


def _is_ucf_crime_split_line(parts: list[str]) -> bool:
    """One "Abuse/Abuse028_x264.mp4" path whose folder is a UCF-Crime class (a renamed copy of
    Anomaly_Test.txt; UCF101 testlists look alike but their folders are other classes)."""
    folders = parts[0].replace("\\", "/").split("/") if len(parts) == 1 else []
    return len(folders) >= 2 and ucf_crime_folder_class(folders[-2]) is not None


def _kinetics_csv(path: Path) -> bool:
    """Whether a CSV's first line is the Kinetics header (label,youtube_id,time_start,...)."""
    for _number, line in _lines(path):
        try:
            return is_kinetics_header(next(csv.reader([line])))
        except csv.Error:
            return False
    return False


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
        return "kinetics" if _kinetics_csv(path) else "list"
    return _sniff_txt(path)


GroundTruth = ClassificationGT | LocalizationGT | AnomalyGT | GroundingGT


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
    elif fmt == "ucf_crime_split":
        gt = read_ucf_crime_split(p)
    elif fmt == "charades_sta":
        gt = read_charades_sta(p)
    elif fmt == "list":
        gt = read_label_list(p)
    elif fmt == "kinetics":
        gt = read_kinetics(p)
    else:
        gt = read_artifact_labels(p)
    return fmt, gt
