"""Helpers the three scorers share: matching prediction video ids onto ground-truth ids,
metric rows, label codes and warning lists. No artifacts are read or written here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from zsar_cli.datasets import normalize_label, video_key

MAX_LISTED = 5


def listed(items: Sequence[str]) -> str:
    """The first few items for a warning line, and how many more there are."""
    items = list(items)
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f", … (+{len(items) - MAX_LISTED})" if len(items) > MAX_LISTED else "")


def json_number(value: float) -> float | None:
    """NaN as None, so the JSON summary holds null rather than the non-standard NaN."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


class IdMatcher:
    """Maps prediction video ids onto ground-truth ids: exact, then file stem, then with or
    without ActivityNet's "v_" prefix (its JSON keys lack it, its video files carry it)."""

    def __init__(self, gt_ids: Sequence[str]) -> None:
        self.exact = set(gt_ids)
        self.loose: dict[str, str] = {}
        for gid in gt_ids:
            for alias in self._aliases(gid):
                self.loose.setdefault(alias, gid)

    @staticmethod
    def _aliases(vid: str) -> list[str]:
        stem = video_key(vid)
        bare = stem[2:] if stem.startswith("v_") else stem
        return [stem, bare, "v_" + bare]

    def __call__(self, vid: str) -> str | None:
        if vid in self.exact:
            return vid
        for alias in self._aliases(vid):
            if alias in self.loose:
                return self.loose[alias]
        return None


def metric_row(
    task: str,
    metric: str,
    value: float,
    threshold: float | None = None,
    label: str | None = None,
    predicted: str | None = None,
) -> dict[str, Any]:
    """One row of the `metrics` artifact."""
    return {
        "task": task,
        "metric": metric,
        "threshold": threshold,
        "label": label,
        "value": float(value),
        "predicted_label": predicted,
    }


def class_index(classes: list[str]) -> dict[str, int]:
    """Normalised label → class index, so predicted labels match however they are spelled."""
    return {normalize_label(c): i for i, c in enumerate(classes)}


def column_codes(column: pa.ChunkedArray) -> tuple[list[str], np.ndarray]:
    """Distinct strings of a column (nulls as "") and each row's index into them."""
    import pyarrow.compute as pc

    # One chunk first: shard parts arrive as several, and per-chunk dictionaries would differ.
    encoded = pc.dictionary_encode(pc.fill_null(column, "").combine_chunks())
    return (
        encoded.dictionary.to_pylist(),
        encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64),
    )
