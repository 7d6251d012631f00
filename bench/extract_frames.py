"""Benchmark of `zsar extract-frames` against torchcodec, PyAV and the bare ffmpeg program.

Rows (issue #17), each tool doing the same sampling on the same generated videos:
1. 16 uniform frames of a 10-min 640x360 H.264 video (30 fps);
2. 1 fps over the same video;
3. 8 uniform frames of each of 20 seven-second 320x240 clips (one keyframe each): zsar with
   `--workers 2`, the others in a 2-process pool (started and warmed before timing);
4. 8 uniform frames of a 30-s 640x360 clip, the whole `zsar` command (start-up included) vs
   the others in process.
Rows 1-3 time zsar's library call in process (`extract_frames.run`: decode, JPEG, Parquet), as
the others are timed in process; `--cli` times the command instead, minus its start-up.
torchcodec runs with its defaults (exact seek mode, one thread), PyAV as a plain user script
(seek, then decode to the target), ffmpeg as one process per seek (sparse) or one filtered
decode (dense). Each measurement is repeated `--repeat` times, tools interleaved; medians shown,
so a shared machine's noise averages out. Ratio = zsar / torchcodec (target <= 1.0, fps row
<= 1.05). torchcodec and PyAV are bench-only extras here: `pip install torchcodec`.

Then peak RSS (zsar process + children) of `--fps 1` over a 10- and a 60-minute video (target
< 500 MB and flat), unless `--no-rss`.

Run: python bench/extract_frames.py [--repeat 5] [--minutes 10] [--workdir DIR] [--no-rss]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import psutil

from zsar_cli.stages.extract_frames import ExtractConfig, run
from zsar_cli.synthetic import generate_background_video

ZSAR = [sys.executable, "-m", "zsar_cli"]


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ---------------------------------------------------------------------------------------------
# The other tools, each as a user would write it


def uniform_targets(start: float, duration: float, n: int) -> list[float]:
    step = duration / n
    return [start + step / 2 + k * step for k in range(n)]


def tc_uniform(path: str, n: int) -> int:
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(path)
    meta = decoder.metadata
    begin, end = meta.begin_stream_seconds, meta.end_stream_seconds
    return len(decoder.get_frames_played_at(uniform_targets(begin, end - begin, n)).data)


def tc_fps(path: str, fps: float) -> int:
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(path)
    meta = decoder.metadata
    begin, end = meta.begin_stream_seconds, meta.end_stream_seconds
    times = [begin + k / fps for k in range(int((end - begin) * fps))]
    return len(decoder.get_frames_played_at(times).data)


def av_uniform(path: str, n: int) -> int:
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        tb = stream.time_base
        start = float(stream.start_time * tb)
        got = 0
        for t in uniform_targets(start, float(stream.duration * tb), n):
            container.seek(int(t / tb), stream=stream)
            for frame in container.decode(stream):
                if frame.time >= t:
                    frame.to_ndarray(format="rgb24")
                    got += 1
                    break
        return got


def av_fps(path: str, fps: float) -> int:
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        start = float(stream.start_time * stream.time_base)
        k = got = 0
        for frame in container.decode(stream):
            if frame.time >= start + k / fps:
                frame.to_ndarray(format="rgb24")
                got += 1
                k = int((frame.time - start) * fps) + 1
        return got


def av_sequential_uniform(path: str, n: int) -> int:
    """One pass (a clip with one keyframe): decode through, convert the n frames wanted."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        tb = stream.time_base
        targets = uniform_targets(float(stream.start_time * tb), float(stream.duration * tb), n)
        got = 0
        for frame in container.decode(stream):
            if got < n and frame.time >= targets[got]:
                frame.to_ndarray(format="rgb24")
                got += 1
        return got


def ffmpeg_seeks(path: str, targets: list[float]) -> None:
    for t in targets:
        cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-ss", f"{t:.6f}", "-i", path]
        cmd += ["-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
        subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)


def ffmpeg_filtered(path: str, vf: str) -> None:
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", path, "-vf", vf]
    cmd += ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    subprocess.run(cmd, stdout=subprocess.DEVNULL, check=True)


def ffmpeg_uniform_one_pass(path: str, n: int, duration: float) -> None:
    step = duration / n
    ffmpeg_filtered(path, f"select='if(gte(t,{step / 2}+ld(0)*{step}),st(0,ld(0)+1),0)'")


def _warm(_: int) -> int:
    import av  # noqa: F401
    from torchcodec.decoders import VideoDecoder  # noqa: F401

    return 0


# ---------------------------------------------------------------------------------------------


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


def cli(args: list[str]) -> None:
    subprocess.run([*ZSAR, "extract-frames", *args], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--long-minutes", type=float, default=60.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--cli", action="store_true", help="time rows 1-3 as commands")
    parser.add_argument("--no-rss", action="store_true")
    parser.add_argument("--decoder", default="pyav", help="zsar's --decoder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        long = work / "long.mp4"
        t = timed(
            lambda: generate_background_video(long, args.minutes * 60, (640, 360), 30, objects=1)
        )
        thirty = work / "thirty.mp4"
        generate_background_video(thirty, 30, (640, 360), 30, objects=1, unit_s=30)
        clips = [work / f"clip{i:02d}.mp4" for i in range(20)]
        for i, clip in enumerate(clips):
            generate_background_video(clip, 7, (320, 240), 25, seed=i, objects=2, unit_s=7)
        print(f"generated the videos in {t:.1f} s (+ 30-s clip, 20 seven-second clips)")
        out = work / "f.parquet"
        dec = ["--decoder", args.decoder]
        startup = statistics.median(
            timed(lambda: subprocess.run([*ZSAR, "--version"], capture_output=True))
            for _ in range(3)
        )

        def zsar(config: ExtractConfig, videos: list[Path], cli_args: list[str]) -> Callable:
            if args.cli:
                return lambda: timed(lambda: cli([*cli_args, *dec, "-o", str(out), "--force"]))
            return lambda: timed(lambda: run(videos, out, config, force=True))

        from zsar_cli.video import probe

        ten_s = probe(long).duration
        long_s, thirty_s, clip_s = str(long), str(thirty), [str(c) for c in clips]
        pool = ProcessPoolExecutor(2)
        list(pool.map(_warm, range(4)))
        _warm(0)

        def pooled(fn: Callable, *extra: object) -> Callable:
            return lambda: timed(
                lambda: list(pool.map(fn, clip_s, *[[e] * len(clip_s) for e in extra]))
            )

        cfg = {"decoder": args.decoder}
        rows: dict[str, dict[str, Callable[[], float]]] = {
            f"16 uniform frames, {args.minutes:g}-min 640x360": {
                "zsar": zsar(ExtractConfig(num_frames=16, **cfg), [long], [long_s, "-n", "16"]),
                "torchcodec": lambda: timed(lambda: tc_uniform(long_s, 16)),
                "pyav": lambda: timed(lambda: av_uniform(long_s, 16)),
                "ffmpeg": lambda: timed(
                    lambda: ffmpeg_seeks(long_s, uniform_targets(0, ten_s, 16))
                ),
            },
            "1 fps, same video": {
                "zsar": zsar(ExtractConfig(fps=1, **cfg), [long], [long_s, "--fps", "1"]),
                "torchcodec": lambda: timed(lambda: tc_fps(long_s, 1)),
                "pyav": lambda: timed(lambda: av_fps(long_s, 1)),
                "ffmpeg": lambda: timed(lambda: ffmpeg_filtered(long_s, "fps=1")),
            },
            "8 frames x 20 7-s 320x240 clips": {
                "zsar": zsar(
                    ExtractConfig(num_frames=8, workers=2, **cfg),
                    clips,
                    [*clip_s, "-n", "8", "--workers", "2"],
                ),
                "torchcodec": pooled(tc_uniform, 8),
                "pyav": pooled(av_sequential_uniform, 8),
                "ffmpeg": pooled(ffmpeg_uniform_one_pass, 8, 7.0),
            },
            "8 frames of a 30-s clip (zsar: whole CLI)": {
                "zsar": lambda: timed(
                    lambda: cli([thirty_s, "-n", "8", *dec, "-o", str(out), "--force"])
                ),
                "torchcodec": lambda: timed(lambda: tc_uniform(thirty_s, 8)),
                "pyav": lambda: timed(lambda: av_uniform(thirty_s, 8)),
                "ffmpeg": lambda: timed(
                    lambda: ffmpeg_seeks(thirty_s, uniform_targets(0, 30.0, 8))
                ),
            },
        }
        tools = ["zsar", "torchcodec", "pyav", "ffmpeg"]
        print(
            f"medians of {args.repeat} interleaved runs, seconds"
            + (f" (zsar CLI minus its start-up {startup:.2f} s)" if args.cli else "")
        )
        print(f"| work | {' | '.join(tools)} | zsar / torchcodec |")
        print(f"|---|{'---|' * len(tools)}---|")
        for name, fns in rows.items():
            samples: dict[str, list[float]] = {tool: [] for tool in tools}
            for _ in range(args.repeat):
                for tool in tools:
                    samples[tool].append(fns[tool]())
            med = {tool: statistics.median(v) for tool, v in samples.items()}
            if args.cli and not name.startswith("8 frames of a 30"):
                med["zsar"] = max(0.0, med["zsar"] - startup)
            cells = " | ".join(f"{med[tool]:.3f}" for tool in tools)
            print(f"| {name} | {cells} | {med['zsar'] / med['torchcodec']:.2f}x |", flush=True)
        pool.shutdown()

        if args.no_rss:
            return
        cmd = [*ZSAR, "extract-frames", "--fps", "1", *dec, "-o"]
        # Writers buffer at most one row group (artifacts.ROW_GROUP_BYTES = 64 MiB), so memory
        # rises until that cap is reached (~50 min of 640x360 1-fps JPEGs) and is flat after it.
        rss = {args.minutes: peak_rss_mb([*cmd, str(work / "rss_a.parquet"), long_s])}
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
