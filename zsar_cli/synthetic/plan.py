"""The plan of a world: every video and its ground truth, drawn from the seed (pure, no I/O).

Input: a `SynthConfig` and the output folder (for the videos' paths). Output: the `WorldVideo`s of
`plan_world`, each from its own seeded stream, with instance boundaries on the boundary grid.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from zsar_cli.synthetic.config import SynthConfig
from zsar_cli.synthetic.vocabulary import BACKGROUND_PHRASE, LABELS, WorldObject, random_object
from zsar_cli.synthetic.world import Instance, WorldVideo

# numpy is imported inside functions only; the package docstring says why.
if TYPE_CHECKING:
    import numpy as np

_KIND_CODE = {"trimmed": 1, "untrimmed": 2, "anomaly": 3}


def _rng(config: SynthConfig, *words: int) -> np.random.Generator:
    import numpy as np

    # Streams keyed by (seed, purpose, index): a video does not change when others are added.
    return np.random.default_rng([config.seed, *words])


def _draw_steps(rng: np.random.Generator, seconds: tuple[float, float], step_s: float) -> int:
    """A duration drawn uniformly on the boundary grid, in grid steps (at least one)."""
    lo = max(1, math.ceil(seconds[0] / step_s - 1e-9))
    hi = max(lo, math.floor(seconds[1] / step_s + 1e-9))
    return int(rng.integers(lo, hi + 1))


def _place(
    rng: np.random.Generator,
    total_steps: int,
    count: tuple[int, int],
    seconds: tuple[float, float],
    gap_s: float,
    step_s: float,
) -> list[tuple[int, int]]:
    """Non-overlapping [start, end) spans (in grid steps), at least `gap_s` apart, in order."""
    import numpy as np

    gap = math.ceil(gap_s / step_s - 1e-9)
    k = int(rng.integers(count[0], count[1] + 1))
    lengths = [_draw_steps(rng, seconds, step_s) for _ in range(k)]
    for _ in range(20):  # redraw a few times before giving up instances
        if sum(lengths) + gap * (len(lengths) - 1) <= total_steps:
            break
        lengths = [_draw_steps(rng, seconds, step_s) for _ in range(k)]
    while sum(lengths) + gap * (len(lengths) - 1) > total_steps:
        if len(lengths) > 1:
            lengths.pop()
        else:
            lengths[0] = total_steps
    free = total_steps - sum(lengths) - gap * (len(lengths) - 1)
    cuts = np.sort(rng.integers(0, free + 1, size=len(lengths)))
    spans, cursor, previous_cut = [], 0, 0
    for length, cut in zip(lengths, cuts, strict=True):
        start = cursor + int(cut) - previous_cut
        spans.append((start, start + length))
        cursor, previous_cut = start + length + gap, int(cut)
    return spans


def plan_world(config: SynthConfig, outdir: str | Path) -> tuple[WorldVideo, ...]:
    """Every video of the world and its ground truth, without rendering anything (pure)."""
    outdir = Path(outdir)
    fps, step = config.fps, config.boundary_frames
    step_s = step / fps
    w, h = config.width, config.height
    videos: list[WorldVideo] = []

    def make_object(rng: np.random.Generator, label: str) -> WorldObject:
        return random_object(rng, w, h, label, config.object_size, config.max_speed)

    def video(kind: str, index: int, label: str | None, frames: int, rng, instances) -> WorldVideo:
        video_id = f"{kind}_{index:04d}"
        return WorldVideo(
            video_id=video_id,
            kind=kind,
            path=outdir / kind / f"{video_id}{config.extension}",
            label=label,
            width=w,
            height=h,
            fps=fps,
            num_frames=frames,
            background=int(rng.integers(config.background[0], config.background[1] + 1)),
            noise_sigma=float(config.noise_sigma),
            noise_seed=int(rng.integers(2**62)),
            instances=tuple(instances),
            phase_frames=0 if kind == "trimmed" else round(config.phase_seconds * fps),
        )

    # Trimmed: labels cycle through one seeded permutation, so counts per label differ by ≤ 1.
    order = _rng(config, 100 + _KIND_CODE["trimmed"]).permutation(len(LABELS))
    for i in range(config.trimmed):
        rng = _rng(config, _KIND_CODE["trimmed"], i)
        label = LABELS[order[i % len(LABELS)]]
        frames = _draw_steps(rng, config.trimmed_duration, step_s) * step
        inst = Instance(label, 0, frames, fps, make_object(rng, label))
        videos.append(video("trimmed", i, label, frames, rng, [inst]))

    order = _rng(config, 100 + _KIND_CODE["untrimmed"]).permutation(len(LABELS))
    for i in range(config.untrimmed):
        rng = _rng(config, _KIND_CODE["untrimmed"], i)
        steps = _draw_steps(rng, config.untrimmed_duration, step_s)
        spans = _place(
            rng, steps, config.instances, config.instance_duration, config.min_gap, step_s
        )
        first = LABELS[order[i % len(LABELS)]]
        labels = [first]
        for _ in spans[1:]:
            if rng.random() < config.same_label_prob:
                labels.append(first)
            else:
                others = [lab for lab in LABELS if lab != first]
                labels.append(others[int(rng.integers(len(others)))])
        labels = [labels[j] for j in rng.permutation(len(labels))]
        instances = [
            Instance(lab, s * step, e * step, fps, make_object(rng, lab))
            for lab, (s, e) in zip(labels, spans, strict=True)
        ]
        videos.append(video("untrimmed", i, None, steps * step, rng, instances))

    n = config.anomaly
    n_normal = round(n * config.normal_fraction)
    if n >= 2 and 0 < config.normal_fraction < 1:
        n_normal = min(max(n_normal, 1), n - 1)  # both kinds present whenever possible
    pick = _rng(config, 100 + _KIND_CODE["anomaly"])
    order = pick.permutation(len(LABELS))
    normal = set(pick.permutation(n)[:n_normal].tolist())
    cycle = 0
    for i in range(n):
        rng = _rng(config, _KIND_CODE["anomaly"], i)
        steps = _draw_steps(rng, config.anomaly_duration, step_s)
        if i in normal:
            videos.append(video("anomaly", i, BACKGROUND_PHRASE, steps * step, rng, []))
            continue
        label = LABELS[order[cycle % len(LABELS)]]
        cycle += 1
        spans = _place(
            rng,
            steps,
            config.anomaly_intervals,
            config.anomaly_interval_duration,
            config.min_gap,
            step_s,
        )
        instances = [
            Instance(label, s * step, e * step, fps, make_object(rng, label)) for s, e in spans
        ]
        videos.append(video("anomaly", i, label, steps * step, rng, instances))
    return tuple(videos)
