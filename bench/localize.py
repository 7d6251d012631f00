"""Benchmark of `zsar localize`: ZEAL proposals per second on hour-long videos' worth of scores.

Input: synthetic 1-fps score curves (default 1,000 videos × 3,600 frames × 3 labels: start/end
p_yes with a few action instances, and a CLIP actionness curve), made in memory.
Output: figures on stdout, as ratios against baselines measured in the same run:
- the numpy matmul that computes the same videos' actionness (3600×D frame embeddings against
  the labels' description embeddings), the floor of any CLIP-based localizer;
- the built-in world CLIP image encoder's forward pass per frame (`builtin:world-clip`, a tiny
  model; real CLIP models are far slower), i.e. what encoding the frames costs.
The target: proposals are never the bottleneck (proposal time ≪ encoding time).

Run: `python bench/localize.py [--videos N] [--frames T] [--labels L] [--no-encoder]`.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from zsar_cli.stages.localize_scores import clip_baseline
from zsar_cli.stages.localize_zeal import zeal_localize


def video_curves(rng: np.random.Generator, frames: int, labels: int):
    """Per label: start and end p_yes with 2-6 instances (peaks at their boundaries), and a
    CLIP actionness curve that is higher inside the instances."""
    out = []
    for _ in range(labels):
        start = 0.1 + 0.1 * rng.random(frames)
        end = 0.1 + 0.1 * rng.random(frames)
        act = 0.15 + 0.02 * rng.standard_normal(frames)
        for _ in range(int(rng.integers(2, 7))):
            s = int(rng.integers(0, frames - 200))
            e = s + int(rng.integers(20, 200))
            start[max(0, s - 2) : s + 3] += 0.8 * rng.random()
            end[e - 2 : e + 3] += 0.8 * rng.random()
            act[s:e] += 0.1
        out.append((np.clip(start, 0, 1), np.clip(end, 0, 1), act))
    return out


def bench_zeal(videos: int, frames: int, labels: int, compat: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    elapsed = 0.0
    intervals = 0
    for _ in range(videos):
        curves = video_curves(rng, frames, labels)
        t0 = time.perf_counter()
        for start, end, act in curves:
            spans, _ = zeal_localize(start, end, act, compat=compat)
            intervals += len(spans)
        elapsed += time.perf_counter() - t0
    return elapsed, intervals


def bench_baseline(videos: int, frames: int, labels: int, dim: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    elapsed = 0.0
    intervals = 0
    text = rng.standard_normal((max(labels, 2), dim))
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    for _ in range(videos):
        emb = rng.standard_normal((frames, dim)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        t0 = time.perf_counter()
        spans, _ = clip_baseline(emb, text, 0)
        elapsed += time.perf_counter() - t0
        intervals += len(spans)
    return elapsed, intervals


def bench_matmul(videos: int, frames: int, labels: int, dim: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((frames, dim)).astype(np.float32)
    text = rng.standard_normal((labels, dim)).astype(np.float32)
    reps = min(videos, 200)
    t0 = time.perf_counter()
    for _ in range(reps):
        (emb @ text.T).astype(np.float64)
    return (time.perf_counter() - t0) / reps


def bench_encoder(frames_to_time: int = 64) -> tuple[float, int] | None:
    """Seconds per frame of the world CLIP image forward (preprocessing included)."""
    try:
        import torch

        from zsar_cli.backends import load_encoder

        torch.set_num_threads(1)
        encoder = load_encoder("builtin:world-clip")
    except Exception as exc:  # the bench still reports the numpy baseline without it
        print(f"(world CLIP unavailable: {type(exc).__name__}: {exc})")
        return None
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (240, 320, 3), dtype=np.uint8) for _ in range(frames_to_time)]
    encoder.encode_images(images[:8])  # warm-up
    t0 = time.perf_counter()
    encoder.encode_images(images)
    return (time.perf_counter() - t0) / frames_to_time, int(encoder.dim)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=3600, help="frames per video (1 fps)")
    parser.add_argument("--labels", type=int, default=3, help="labels kept per video")
    parser.add_argument("--dim", type=int, default=512, help="embedding size for the matmul")
    parser.add_argument("--no-encoder", action="store_true", help="skip the world CLIP forward")
    args = parser.parse_args()
    n, frames, labels = args.videos, args.frames, args.labels
    print(f"localize bench: {n} videos × {frames} frames (1 fps) × {labels} labels")

    zeal_s, zeal_n = bench_zeal(n, frames, labels, compat=False)
    sub = max(1, n // 10)
    compat_s, compat_n = bench_zeal(sub, frames, labels, compat=True)
    base_s, base_n = bench_baseline(sub, frames, labels, args.dim)
    matmul_s = bench_matmul(n, frames, labels, args.dim)
    per_video = zeal_s / n
    print(
        f"ZEAL (default):     {zeal_n / zeal_s:10.0f} intervals/s  {n / zeal_s:8.1f} videos/s  "
        f"{1000 * per_video:7.2f} ms/video"
    )
    print(
        f"ZEAL (--compat):    {compat_n / compat_s:10.0f} intervals/s  "
        f"{sub / compat_s:8.1f} videos/s  ({sub} videos)"
    )
    print(
        f"CLIP-only baseline: {base_n / base_s:10.0f} intervals/s  {sub / base_s:8.1f} videos/s  "
        f"({sub} videos, 1 label, D={args.dim})"
    )
    print(
        f"baseline numpy actionness matmul ({frames}×{args.dim} @ {args.dim}×{labels}): "
        f"{1000 * matmul_s:.3f} ms/video → ZEAL proposals = {per_video / matmul_s:.1f}× it"
    )
    if not args.no_encoder:
        measured = bench_encoder()
        if measured is not None:
            per_frame, dim = measured
            encode_video = per_frame * frames
            print(
                f"baseline world CLIP image forward (D={dim}, 1 thread): "
                f"{1 / per_frame:.0f} frames/s → {encode_video:.2f} s/video"
            )
            print(
                f"ratio: encoding a video's frames takes {encode_video / per_video:.0f}× "
                f"its ZEAL proposals (proposals are {100 * per_video / encode_video:.2f}% "
                "of encode time)"
            )


if __name__ == "__main__":
    main()
