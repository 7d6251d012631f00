"""Classification over a subset of the classes: excluded classes and zero-shot class splits.

Input: a `predictions` table with its `ClassificationGT` (`--exclude-class`), or a scored
`ClassificationReport` and a split spec (`--class-splits`, `--seed`, `--base-classes`).
Output: the filtered table and ground truth; a `SplitsResult` — per split top-1, top-5 and
mean-class accuracy with the split's classes, their mean and std — with its JSON summary,
`metrics` rows and headline lines.

A split keeps the ground-truth videos of its classes and ranks only its classes: each video's
best split class is its top-1, as if the label file had held the split's classes alone. The
ranking is the predictions' own order (rank column, then score), restricted to the split; that
needs a row for every label of every scored video, which `classify` writes. A table cut to its
top-k is refused rather than scored on a partial ranking.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from zsar_cli.datasets import ClassificationGT, normalize_label
from zsar_cli.errors import ConfigError, InputError
from zsar_cli.metrics import AccuracyResult, accuracy_metrics
from zsar_cli.stages.score_classification import NOT_RANKED, ClassificationReport
from zsar_cli.stages.score_common import IdMatcher, listed, metric_row
from zsar_cli.stages.score_config import ScoreConfig

# half:N | KxN | novel:KxN (anything else names a file of splits).
_SPEC = re.compile(r"^(?:half:(?P<half>\d+)|(?P<novel>novel:)?(?P<k>\d+)x(?P<n>\d+))$")
STD = "population (numpy ddof=0)"


def exclude_classes(
    predictions: pa.Table, gt: ClassificationGT, names: tuple[str, ...]
) -> tuple[pa.Table, ClassificationGT, dict[str, int]]:
    """Drop classes from both sides: their ground-truth videos, and their label rows from every
    video's ranking (so the argmax runs over the other labels). Returns the table, the ground
    truth and the number of videos dropped per class."""
    spelled = {normalize_label(c): c for c in gt.classes}
    counts: dict[str, int] = {}
    for name in names:
        key = normalize_label(name)
        if key not in spelled:
            raise ConfigError(
                f"--exclude-class {name!r}: not a class of the ground truth ({listed(gt.classes)})"
            )
        counts[spelled[key]] = 0
    keys = {normalize_label(c) for c in counts}
    labels: dict[str, str] = {}
    dropped: set[str] = set()
    for vid, label in gt.labels.items():
        if normalize_label(label) in keys:
            dropped.add(vid)
            counts[spelled[normalize_label(label)]] += 1
        else:
            labels[vid] = label
    if not labels:
        raise InputError(f"--exclude-class {', '.join(names)}: no ground-truth video is left")
    kept = ClassificationGT(
        labels, [c for c in gt.classes if normalize_label(c) not in keys], gt.source
    )
    # The excluded classes' videos leave the predictions too: they are out of the protocol,
    # not "predicted videos absent from the ground truth".
    matcher = IdMatcher(list(gt.labels))
    ids = predictions.column("video_id").to_pylist()
    row_labels = predictions.column("label").to_pylist()
    keep = [
        matcher(vid) not in dropped and (lab is None or normalize_label(lab) not in keys)
        for vid, lab in zip(ids, row_labels, strict=True)
    ]
    return predictions.filter(pa.array(keep, pa.bool_())), kept, counts


def read_split_file(path: Path, classes: list[str]) -> list[list[str]]:
    """Splits written out: a JSON list of lists of classes, or one split per line with its
    classes separated by ';'. Classes match the ground truth's however they are spelled."""
    from zsar_cli.datasets.common import _bad, _lines

    spelled = {normalize_label(c): c for c in classes}
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--class-splits {path}: cannot read ({exc})") from None
    rows: list[tuple[int, list[str]]]
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, list) or not all(
            isinstance(s, list) and all(isinstance(c, str) for c in s) for s in data
        ):
            raise InputError(f"{path}: expected a JSON list of lists of class names")
        rows = [(i + 1, s) for i, s in enumerate(data)]
    else:
        rows = [(n, [c.strip() for c in line.split(";") if c.strip()]) for n, line in _lines(path)]
    splits: list[list[str]] = []
    for number, names in rows:
        if not names:
            raise _bad(path, number, "a split with no classes")
        split: list[str] = []
        for name in names:
            label = spelled.get(normalize_label(name))
            if label is None:
                raise _bad(path, number, f"class {name!r} is not in the ground truth")
            if label in split:
                raise _bad(path, number, f"class {name!r} listed twice in one split")
            split.append(label)
        splits.append(split)
    if not splits:
        raise InputError(f"{path}: no splits")
    return splits


def draw_splits(pool: list[str], size: int, count: int, seed: int) -> list[list[str]]:
    """`count` random draws of `size` classes: the pool sorted first (so the order of the ground
    truth does not matter), then numpy `default_rng(seed).choice` without replacement, each
    split's classes in sorted order."""
    ordered = sorted(pool)
    if not 1 <= size <= len(ordered):
        raise ConfigError(f"--class-splits: {size} classes per split, but the pool has {len(pool)}")
    rng = np.random.default_rng(seed)
    return [
        [ordered[i] for i in np.sort(rng.choice(len(ordered), size=size, replace=False))]
        for _ in range(count)
    ]


@dataclass
class SplitsResult:
    spec: str
    seed: int | None  # None: splits read from a file
    pool: list[str]  # the classes the splits were drawn from
    base_classes: str | None
    classes: list[list[str]]
    results: list[AccuracyResult] = field(repr=False)
    videos: list[int]

    METRICS = (("top1", "top1"), ("top5", "top5"), ("mean_class", "mean_class_accuracy"))

    def values(self, attr: str) -> np.ndarray:
        return np.array([getattr(r, attr) for r in self.results], float)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "spec": self.spec,
            "seed": self.seed,
            "pool_classes": len(self.pool),
            "base_classes": self.base_classes,
            "std": STD,
            "splits": [
                {
                    "classes": c,
                    "videos": n,
                    "top1": r.top1,
                    "top5": r.top5,
                    "mean_class": r.mean_class,
                }
                for c, n, r in zip(self.classes, self.videos, self.results, strict=True)
            ],
        }
        for attr, _name in self.METRICS:
            out[f"{attr}_mean"] = float(self.values(attr).mean())
            out[f"{attr}_std"] = float(self.values(attr).std())
        return out

    def metric_rows(self, task: str) -> list[dict[str, Any]]:
        """Per split (label "split1", ...) and mean/std rows, then one `split_class` row per
        (split, class) with the split's number as value: the splits can be rebuilt from the
        metrics artifact alone."""
        rows = []
        for i, (n, r) in enumerate(zip(self.videos, self.results, strict=True), 1):
            for attr, name in self.METRICS:
                rows.append(metric_row(task, f"split_{name}", getattr(r, attr), label=f"split{i}"))
            rows.append(metric_row(task, "split_videos", n, label=f"split{i}"))
        for attr, name in self.METRICS:
            rows.append(metric_row(task, f"split_{name}_mean", float(self.values(attr).mean())))
            rows.append(metric_row(task, f"split_{name}_std", float(self.values(attr).std())))
        for i, classes in enumerate(self.classes, 1):
            rows.extend(metric_row(task, "split_class", i, label=c) for c in classes)
        return rows

    def headline(self) -> list[tuple[str, str]]:
        sizes = sorted({len(c) for c in self.classes})
        what = f"{len(self.classes)} class splits of {'/'.join(map(str, sizes))}"
        return [
            (
                f"{title} over {what} (mean ± std)",
                f"{self.values(attr).mean():.4f} ± {self.values(attr).std():.4f}",
            )
            for attr, title in (("top1", "top-1"), ("top5", "top-5"), ("mean_class", "mean-class"))
        ]


def split_classes(
    config: ScoreConfig, classes: list[str], with_videos: list[str]
) -> tuple[list[list[str]], list[str], int | None]:
    """The splits --class-splits asks for (splits, pool, seed; None when they come from a file).

    `classes`: the ground truth's; random splits are drawn from `with_videos`, those of them
    that have videos. Drawing only among them keeps a
    split from holding no video at all (a 0 that would pull the mean down); the official test
    lists have videos of every class, so the pool is the dataset's class list there."""
    from zsar_cli.labels import read_labels

    spec = config.class_splits or ""
    m = _SPEC.match(spec.strip())
    if m is None:
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(
                f"--class-splits {spec!r}: expected half:N, KxN, novel:KxN or a file of splits"
            )
        return read_split_file(path, classes), list(classes), None
    pool = list(with_videos)
    if m.group("novel"):
        assert config.base_classes is not None  # ScoreConfig.check
        base = {normalize_label(c) for c in read_labels(config.base_classes)}
        pool = [c for c in with_videos if normalize_label(c) not in base]
        if not pool:
            raise InputError(
                f"--base-classes {config.base_classes}: holds every ground-truth class "
                "(no novel class left)"
            )
    if m.group("half"):
        size, count = len(pool) // 2, int(m.group("half"))
    else:
        size, count = int(m.group("k")), int(m.group("n"))
    if count < 1:
        raise ConfigError(f"--class-splits {spec}: need at least one split")
    return draw_splits(pool, size, count, config.seed), pool, config.seed


def score_split(report: ClassificationReport, cols: np.ndarray) -> tuple[AccuracyResult, int]:
    """Accuracy on the videos of the classes `cols` (indices into report.classes), ranking those
    classes only. Videos with no prediction or an error row stay wrong."""
    local = np.full(len(report.classes), -1, np.int64)
    local[cols] = np.arange(len(cols))
    rows = np.flatnonzero(local[report.true_idx] >= 0)
    full = report.rank_matrix[rows]
    sub = full[:, cols]
    scored = (full != NOT_RANKED).any(axis=1)
    incomplete = scored & (sub == NOT_RANKED).any(axis=1)
    if incomplete.any():
        r = int(np.flatnonzero(incomplete)[0])
        absent = [report.classes[c] for c, p in zip(cols, sub[r], strict=True) if p == NOT_RANKED]
        raise InputError(
            f"--class-splits: {int(incomplete.sum())} video(s) have no score for some classes of "
            f"a split (e.g. {report.video_ids[rows[r]]!r} lacks {listed(absent)}); ranking a "
            "split's classes needs every label's score, and these predictions hold fewer "
            "(cut to a top-k?). classify's artifact keeps every label."
        )
    top_k = min(5, len(cols))
    order = np.argsort(sub, axis=1, kind="stable")[:, :top_k]
    ranked = np.where(np.take_along_axis(sub, order, axis=1) == NOT_RANKED, -1, order)
    return accuracy_metrics(local[report.true_idx[rows]], ranked, len(cols)), len(rows)


def score_class_splits(report: ClassificationReport, config: ScoreConfig) -> SplitsResult:
    """Per-split accuracy of a scored report under --class-splits (see the module docstring)."""
    gt_classes = report.classes[: report.n_gt_classes]
    support = np.bincount(report.true_idx, minlength=len(report.classes))
    with_videos = [c for i, c in enumerate(gt_classes) if support[i] > 0]
    splits, pool, seed = split_classes(config, gt_classes, with_videos)
    index = {c: i for i, c in enumerate(gt_classes)}
    results, videos = [], []
    for number, split in enumerate(splits, 1):
        acc, n = score_split(report, np.array([index[c] for c in split], np.int64))
        if n == 0:
            raise InputError(
                f"--class-splits {config.class_splits}: split {number} has no ground-truth "
                f"video ({listed(split)})"
            )
        results.append(acc)
        videos.append(n)
    return SplitsResult(
        config.class_splits or "", seed, pool, config.base_classes, splits, results, videos
    )
