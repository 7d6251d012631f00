"""Benchmark of `zsar extract-frames` against bare ffmpeg, measured in the same run.

Figures (ratios, so they hold on any machine):
1. `--fps 1 --size 224` wall time vs `ffmpeg -i … -vf fps=1,scale=… -f rawvideo -` (target ≤ 1.25×);
2. `--num-frames 16` wall time vs decoding the whole video (target ≥ 5× faster);
3. peak RSS (zsar process + its ffmpeg) of a `--fps 1` extraction of a 10- and a 60-minute video
   (target < 500 MB and not growing with duration).

Run: python bench/extract_frames.py [--minutes 10] [--long-minutes 60] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from zsar_cli.stages.extract_frames import ExtractConfig, run
from zsar_cli.synthetic import generate_background_video


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_of(n: int, fn) -> float:  # type: ignore[no-untyped-def]
    return min(timed(fn) for _ in range(n))


def bare_ffmpeg(path: Path, vf: str | None) -> None:
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(path)]
    if vf:
        cmd += ["-vf", vf, "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    else:
        cmd += ["-f", "null", "-"]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)


def peak_rss_mb(cmd: list[str]) -> float:
    """Peak summed RSS of a process tree, sampled every 20 ms."""
    proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            try:
                procs = [proc, *proc.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    proc.wait()
    stop.set()
    thread.join()
    if proc.returncode != 0:
        raise SystemExit(f"extraction failed: {cmd}")
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--long-minutes", type=float, default=60.0)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        video = work / "ten.mp4"
        t = timed(
            lambda: generate_background_video(video, args.minutes * 60, (640, 360), 25, objects=1)
        )
        print(f"generated {args.minutes:g}-min 640x360 H.264 in {t:.1f} s")

        out = work / "f.parquet"
        ours = best_of(2, lambda: run([video], out, ExtractConfig(fps=1, size=224), force=True))
        base = best_of(2, lambda: bare_ffmpeg(video, "fps=1,scale=398:224"))
        print(
            f"--fps 1:          zsar {ours:6.2f} s | bare ffmpeg {base:6.2f} s | "
            f"ratio {ours / base:.2f}x (target <= 1.25x)"
        )

        sparse = best_of(
            2, lambda: run([video], out, ExtractConfig(num_frames=16, size=224), force=True)
        )
        whole = best_of(1, lambda: bare_ffmpeg(video, None))
        print(
            f"--num-frames 16:  zsar {sparse:6.2f} s | full decode {whole:6.2f} s | "
            f"speed-up {whole / sparse:.1f}x (target >= 5x)"
        )

        cmd = [
            sys.executable,
            "-m",
            "zsar_cli",
            "extract-frames",
            "--fps",
            "1",
            "-o",
        ]
        # Writers buffer at most one row group (artifacts.ROW_GROUP_BYTES = 64 MiB), so memory
        # rises until that cap is reached (~50 min of 640x360 1-fps JPEGs) and is flat after it.
        rss = {args.minutes: peak_rss_mb([*cmd, str(work / "rss_a.parquet"), str(video)])}
        for minutes in (args.long_minutes, 2 * args.long_minutes):
            long_video = work / f"long{minutes:g}.mp4"
            generate_background_video(long_video, minutes * 60, (640, 360), 25)
            rss[minutes] = peak_rss_mb(
                [*cmd, str(work / f"rss{minutes:g}.parquet"), str(long_video)]
            )
        shown = " | ".join(f"{m:g} min {v:6.1f} MB" for m, v in rss.items())
        half, full = rss[args.long_minutes], rss[2 * args.long_minutes]
        print(
            f"peak RSS --fps 1: {shown} | {args.long_minutes:g}->{2 * args.long_minutes:g} min "
            f"growth {full / half:.2f}x (target < 500 MB, flat)"
        )


if __name__ == "__main__":
    main()
