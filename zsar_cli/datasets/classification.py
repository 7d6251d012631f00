"""Readers of one-label-per-video ground truth.

Input: UCF101 split lists (`classInd.txt`, `testlist0N.txt`), HMDB51 split files
(`<class>_test_splitN.txt`), `video,label` list files, and zsar artifacts (`frames`/`embeddings`
label column, `predictions` true_label column). Output: `ClassificationGT`.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from zsar_cli.datasets.common import (
    ClassificationGT,
    _bad,
    _int,
    _lines,
    normalize_label,
    video_key,
)
from zsar_cli.errors import InputError

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
