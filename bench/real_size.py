"""Shared by the LVLM benchmarks: real-size models, ZEAL's questions, frames, timers, memory.

Real-size models are the random-init builds of scripts/build_real_lvlms.py (built on first use
into `$ZSAR_CACHE_DIR/real-lvlms`, ~40 s and ~1 GB for SmolVLM2-256M). Timers report wall seconds
and the CPU seconds of this process: on a machine shared with other jobs wall time swings with
their load while CPU seconds (core-seconds of work) do not, so both are printed and the ratios of
each.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Spinning OpenMP workers starve each other when the machine runs other jobs (a 2-thread
# elementwise op was measured 100x slower): sleep instead. Read once, before torch starts.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# ZEAL's per-frame questions for three labels: a start and an end question each.
ZEAL_LABELS = ("a red circle", "a blue square", "a green triangle")
START_QUESTION = "Is the object just appearing at the edge of the frame?"
END_QUESTION = "Is the object only drawn as an outline, about to disappear?"


def real_model_spec(name: str) -> str:
    """`hf:/dir` of a real-size random-init model, built first if missing."""
    from scripts.build_real_lvlms import ensure

    return f"hf:{ensure(name)}"


def zeal_queries() -> list[Any]:
    """The 6 `Query` objects ZEAL asks of every frame (3 labels × start/end)."""
    from zsar_cli.prompts import ZEAL_FRAME_PROMPT
    from zsar_cli.stages.query_lvlm import Query

    return [
        Query(label, kind, ZEAL_FRAME_PROMPT.format(label=label, question=question))
        for label in ZEAL_LABELS
        for kind, question in (("start", START_QUESTION), ("end", END_QUESTION))
    ]


def world_frames(count: int, width: int = 640, height: int = 360, seed: int = 0) -> list:
    from zsar_cli.synthetic import random_object, render_frame

    rng = np.random.default_rng(seed)
    return [
        render_frame(width, height, [random_object(rng, width, height)], rng=rng)
        for _ in range(count)
    ]


def frames_table(images: list, video_id: str = "bench", fps: float = 1.0) -> Any:
    """A one-video `frames` table of JPEG frames, as `extract-frames --fps` writes it."""
    from zsar_cli.artifacts import build_table
    from zsar_cli.images import encode_image

    n = len(images)
    cols = {
        "video_id": [video_id] * n,
        "path": [f"/bench/{video_id}.mp4"] * n,
        "label": [None] * n,
        "frame_index": list(range(n)),
        "timestamp": [i / fps for i in range(n)],
        "segment": [-1] * n,
        "width": [int(im.shape[1]) for im in images],
        "height": [int(im.shape[0]) for im in images],
        "image": [encode_image(im, "jpeg") for im in images],
        "error": [None] * n,
    }
    return build_table("frames", cols)


def rss_mib() -> float:
    """This process's resident memory now (MiB)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import psutil

    return float(psutil.Process().memory_info().rss) / 2**20


def peak_rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class Timing:
    wall: float
    cpu: float

    def ratio(self, other: Timing) -> str:
        """`self / other` in wall and CPU time."""
        return f"{self.wall / other.wall:5.2f}x wall, {self.cpu / other.cpu:5.2f}x CPU"


def timed(fn: Callable[[], Any], repeats: int = 1) -> tuple[Timing, Any]:
    """The fastest of `repeats` runs (wall and CPU seconds) and the last result."""
    best: Timing | None = None
    result = None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        run = Timing(time.perf_counter() - wall, time.process_time() - cpu)
        best = run if best is None or run.cpu < best.cpu else best
    assert best is not None
    return best, result
