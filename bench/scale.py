"""Benchmark of dataset-scale execution, measured in one run:

1. `extract-frames --workers 2` vs `--workers 1` on the same videos (target >= 1.7x on 2 cores);
2. two shards run concurrently as two processes vs one unsharded process (target >= 1.7x);
3. projected node-hours for 1,000 hours of video at 1 fps with ViT-B/32, from per-frame costs
   measured here (decode at 1 fps, CLIP ViT-B/32 forward on this CPU); the GPU line uses the
   per-frame GPU cost passed with --gpu-ms-per-frame (measure it with bench/encode.py on a GPU
   node; the default is an explicit assumption, printed as such).

Run: python bench/scale.py [--videos 8] [--minutes 1.5]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from zsar_cli.stages.extract_frames import ExtractConfig, run
from zsar_cli.synthetic import generate_background_video

ZSAR = [sys.executable, "-m", "zsar_cli"]


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cores_used(fn) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(wall seconds, CPU cores busy on average) of a run, ffmpeg children included."""
    import resource

    def cpu() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    c0 = cpu()
    wall = timed(fn)
    return wall, (cpu() - c0) / wall


def vit_b32_cpu_ms_per_frame(batch: int = 16) -> float:
    """A bare forward of a random-init ViT-B-32 (the same compute as the pretrained one)."""
    import open_clip
    import torch

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    images = torch.randn(batch, 3, 224, 224)
    with torch.no_grad():
        model.encode_image(images[:2])
        start = time.perf_counter()
        model.encode_image(images)
    return (time.perf_counter() - start) / batch * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=1.5)
    parser.add_argument(
        "--gpu-ms-per-frame",
        type=float,
        default=0.5,
        help="ViT-B/32 fp16 per-frame cost on the target GPU (assumption unless measured there)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        videos = [
            generate_background_video(
                work / f"v{i}.mp4", args.minutes * 60, (640, 360), 25, seed=i, objects=1
            )
            for i in range(args.videos)
        ]
        cfg = ExtractConfig(fps=1, size=224)
        one, busy1 = cores_used(lambda: run(videos, work / "w1.parquet", cfg))
        two, busy2 = cores_used(
            lambda: run(videos, work / "w2.parquet", ExtractConfig(fps=1, size=224, workers=2))
        )
        ceiling = os.cpu_count() / busy1 if busy1 else float("nan")
        print(
            f"extract-frames --workers 2 vs 1: {one:.2f} s / {two:.2f} s = {one / two:.2f}x "
            f"(target >= 1.7x); cores busy {busy1:.2f} vs {busy2:.2f}: one worker's ffmpeg "
            f"already uses {busy1:.2f} of {os.cpu_count()} cores, so at most {ceiling:.2f}x here"
        )

        base = [*ZSAR, "extract-frames", *map(str, videos), "--fps", "1", "--size", "224"]
        single = timed(
            lambda: subprocess.run(
                [*base, "-o", str(work / "s.parquet")], check=True, capture_output=True
            )
        )

        def two_shards() -> None:
            procs = [
                subprocess.Popen(
                    [*base, "--shard", f"{i}/2", "-o", str(work / "parts")],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for i in range(2)
            ]
            for p in procs:
                if p.wait() != 0:
                    raise SystemExit("shard failed")

        sharded = timed(two_shards)
        print(
            f"2 concurrent shards vs 1 process: {single:.2f} s / {sharded:.2f} s = "
            f"{single / sharded:.2f}x (target >= 1.7x)"
        )

        frames = args.videos * args.minutes * 60  # 1 fps
        decode_ms = one / frames * 1000  # CPU-core time per 1-fps frame (one worker)
        cpu_ms = vit_b32_cpu_ms_per_frame()
        total_frames = 1000 * 3600
        hours = lambda ms: total_frames * ms / 1000 / 3600  # noqa: E731
        print("\nprojection, 1,000 h of 640x360 video at 1 fps = 3.6 M frames:")
        print("| step | cost per frame | node-hours |")
        print("|---|---|---|")
        print(
            f"| decode + sample (one worker, wall, measured) | {decode_ms:.1f} ms | "
            f"{hours(decode_ms):.0f} worker-h ({hours(decode_ms) / 16:.1f} h with 16 workers) |"
        )
        print(f"| ViT-B/32 on this CPU (measured) | {cpu_ms:.1f} ms | {hours(cpu_ms):.0f} |")
        print(
            f"| ViT-B/32 fp16 on one GPU (assumed {args.gpu_ms_per_frame} ms) | "
            f"{args.gpu_ms_per_frame} ms | {hours(args.gpu_ms_per_frame):.1f} |"
        )
        gpu_node = max(hours(args.gpu_ms_per_frame), hours(decode_ms) / 16)
        print(
            f"\none GPU node with 16 decode cores: ~{gpu_node:.0f} node-hours "
            f"(decode-bound: {hours(decode_ms) / 16 > hours(args.gpu_ms_per_frame)})"
        )


if __name__ == "__main__":
    main()
