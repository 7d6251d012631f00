"""Benchmark: Self-ReS (select tokens per path, answer from the kept ones) vs answering from all T
densely sampled frames in one prompt, wall time, CPU time and peak memory, measured in the same run.

Input: T = R·S world frames (zsar_cli.synthetic; default 4 paths × 16 frames = 64) and a
presence question; the shipped world LVLM and the real-size random-init models of
scripts/build_real_lvlms.py (`--real`, default `smolvlm2-256m`: SigLIP-B/16 at 512 px, 64 tokens
per frame, SmolLM2-135M). Output (stdout): per model, seconds and peak RSS increase of (a) the
dense baseline — one forward pass over all T frames — and (b) Self-ReS with each scorer — R
selection passes of S frames plus the final pass over the budget (default: the tokens of 16
frames) — with the ratio of (b) to (a). Each measurement runs in a fresh forked process (model
loaded there) so peak memory is its own. Both sides run the vision tower on all T frames once, so
at real size on CPU, where the vision tower dominates, expect a ratio near 1; Self-ReS saves
language-model work (R passes of S frames instead of one of T, quadratic attention), and its
attention scorer holds every layer's attention weights of a path (eager attention).

    python bench/select_tokens.py [--segments R] [--per-segment S] [--real NAME,...] [--repeats K]
        [--video-input images|native]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import time

import numpy as np
import real_size  # before torch: sets OMP_WAIT_POLICY; puts the repository on sys.path
import torch

from zsar_cli.backends import load_lvlm
from zsar_cli.backends.lvlm_base import Clip
from zsar_cli.stages.select_tokens import FrameItem, select_video_tokens, uncapped_frames
from zsar_cli.stages.select_tokens_config import SelectTokensConfig
from zsar_cli.stages.self_res import answer_yes_no, kept_from_selection
from zsar_cli.stages.self_res_video import resolve_video_input
from zsar_cli.synthetic import random_object, render_frame

QUESTION = "Is there {label} in this frame?"


def frames(count: int, per_segment: int, seed: int = 0) -> tuple[list[FrameItem], str]:
    rng = np.random.default_rng(seed)
    obj = random_object(rng, 320, 240, max_speed=0.0)
    shown = {count // 2, count // 2 + 1}
    items = [
        FrameItem(
            i,
            i / 8.0,
            i // per_segment,
            render_frame(320, 240, [obj] if i in shown else [], rng=rng),
        )
        for i in range(count)
    ]
    return items, QUESTION.format(label=obj.label)


def _measure(*args: object) -> None:
    """One measurement in this (forked) process; a failure goes back as its message, so the
    parent reports it instead of waiting for a result that never comes."""
    queue = args[-1]
    try:
        _measured(*args)
    except Exception as exc:  # any failure is reported by the parent
        queue.put(f"{type(exc).__name__}: {exc}")  # type: ignore[attr-defined]


def _measured(
    spec: str, method: str, segments: int, per_segment: int, threads: int, video: str, queue
) -> None:
    torch.set_num_threads(threads)
    lvlm = load_lvlm(spec, device="cpu", dtype="float32")
    items, question = frames(segments * per_segment, per_segment)
    images: list = [f.image for f in items]
    if resolve_video_input(lvlm, video) == "native":  # both sides: the model's video tokens
        images = Clip(images, [float(f.timestamp or 0.0) for f in items])
    with uncapped_frames(lvlm):
        lvlm.yes_no([images[:1]], [question])  # warm-up (allocator, lazy init)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start, cpu = time.perf_counter(), time.process_time()
    if method == "dense":
        with uncapped_frames(lvlm):
            p = float(lvlm.yes_no([images], [question]).p_yes[0])
    else:
        scorer = method.partition(":")[2]
        cfg = SelectTokensConfig(
            model=spec, question=question, scorer=scorer, video_input=video
        ).validated()
        sel = select_video_tokens(lvlm, "bench", items, question, cfg)
        p = answer_yes_no(lvlm, kept_from_selection(sel), 320, 240, question)[0]
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put((seconds, cpu, (peak - base) / 1024.0, p))


def measure(spec: str, method: str, args: argparse.Namespace, repeats: int):
    ctx = mp.get_context("fork")
    runs = []
    for _ in range(repeats):
        queue = ctx.Queue()
        proc = ctx.Process(
            target=_measure,
            args=(
                spec,
                method,
                args.segments,
                args.per_segment,
                args.threads,
                args.video_input,
                queue,
            ),
        )
        proc.start()
        got = queue.get()
        proc.join()
        if isinstance(got, str):
            raise RuntimeError(got)
        runs.append(got[:3])
    return tuple(float(np.median(column)) for column in zip(*runs, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument("--per-segment", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (world model)")
    parser.add_argument("--real", default="smolvlm2-256m", help="real-size models ('' for none)")
    parser.add_argument("--real-repeats", type=int, default=1)
    parser.add_argument("--scorers", default="attention,similarity")
    parser.add_argument(
        "--video-input",
        default="images",
        choices=("images", "native", "auto"),
        help="how frames reach the LVLM on both sides (native: its video tokens, real times)",
    )
    args = parser.parse_args()
    total = args.segments * args.per_segment
    print(
        f"T = {args.segments} paths × {args.per_segment} frames = {total}; budget 16 frames; "
        f"--video-input {args.video_input}"
    )
    models = [("world-lvlm (tiny)", "builtin:world-lvlm", args.repeats)]
    for name in filter(None, args.real.split(",")):
        models.append((f"{name} (real size, random init)", real_size.real_model_spec(name), 0))
    for name, spec, repeats in models:
        repeats = repeats or args.real_repeats
        try:
            dense_s, dense_cpu, dense_mb = measure(spec, "dense", args, repeats)
        except RuntimeError as exc:  # e.g. --video-input native on a model without a video path
            print(f"\n{name}: not measured ({exc})")
            continue
        print(f"\n{name}")
        print(
            f"  dense (all {total} frames, one pass): {dense_s:7.1f} s wall {dense_cpu:7.1f} s CPU"
            f"  peak +{dense_mb:7.1f} MiB"
        )
        for scorer in filter(None, args.scorers.split(",")):
            self_s, self_cpu, self_mb = measure(spec, f"selfres:{scorer}", args, repeats)
            print(
                f"  Self-ReS {scorer:>10} ({args.segments} paths + final): {self_s:7.1f} s wall "
                f"{self_cpu:7.1f} s CPU  peak +{self_mb:7.1f} MiB  → time {self_s / dense_s:.2f}x "
                f"wall, {self_cpu / dense_cpu:.2f}x CPU; peak memory "
                f"{self_mb / max(dense_mb, 1e-6):.2f}x of dense"
            )


if __name__ == "__main__":
    main()
