"""Reader of UCF-Crime temporal anomaly annotations.

Input: lines "Abuse028_x264.mp4  Abuse  165  240  -1  -1" (1-based inclusive frame numbers).
Output: `AnomalyGT` with 0-based inclusive spans.
"""

from __future__ import annotations

from pathlib import Path

from zsar_cli.datasets.common import AnomalyGT, _bad, _int, _lines, video_key
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
