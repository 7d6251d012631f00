"""Benchmark of `zsar extract-frames` against torchcodec, PyAV and the bare ffmpeg program.

Rows (issue #17), each tool doing the same sampling on the same generated videos:
1. 16 uniform frames of a 10-min 640x360 H.264 video (30 fps; keyframe every 10 s): sparse seeks;
2. 1 fps over the same video: a sequential decode;
3. 8 uniform frames of each of 20 seven-second 320x240 clips (one keyframe each): per-video
   overhead. zsar with `--workers 2`, the others in a 2-process pool (started and warmed
   before timing); also shown as clips/s (issue #17: torchcodec ~62 clips/s on 2 idle cores);
4. 8 uniform frames of a 30-s 640x360 clip, the whole `zsar` command (Python start-up and
   imports included) vs the others in process;
5. the same as row 4 with every tool a whole command: `python -c` processes that import
   torchcodec (or PyAV), decode the 8 frames and save them as JPEG files, against the `zsar`
   command (a command against a command: what issue #17's whole-CLI row is judged by).
Rows 1-3 time zsar's library call in process (`extract_frames.run`: decode, JPEG by default,
Parquet with its per-video checkpoints), as the others are timed in process decoding to RGB
arrays (`--image-format raw` spares zsar the JPEG encoding); `--cli` times the command instead,
minus its start-up. torchcodec runs with its defaults (exact seek mode, one thread), PyAV as a
plain user script (seek, then decode to the target), ffmpeg as one process per seek (sparse) or
one filtered decode (dense). Each measurement is repeated `--repeat` times, tools interleaved;
medians shown. Besides wall time, CPU seconds (this process, its threads, its children and the
pool's workers) are shown: on a shared machine wall times swing with the load, CPU time much
less, so the CPU ratios are the ones to read when the header says the machine was busy.
Ratio = zsar / other (target vs torchcodec: <= 1.0, fps row <= 1.05).
torchcodec is a bench-only extra: pip install 'zsar[bench]'.

Then peak RSS (zsar process + children) of `--fps 1` over a 10-, 60- and 120-minute video
(target < 500 MB, flat), unless `--no-rss` or `--quick`.

Run: python bench/extract_frames.py --quick        (about 1 min idle, < 3 min busy: 2-min video,
                                                    3 repeats, no RSS)
     python bench/extract_frames.py                (the issue's sizes: 10-min video, 5 repeats)
     options: --repeat N --minutes M --workdir DIR --no-rss --cli --image-format raw
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import shutil
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's zsar, installed or not

from zsar_cli.stages.extract_frames import ExtractConfig, run  # noqa: E402
from zsar_cli.synthetic import generate_background_video  # noqa: E402

ZSAR = [sys.executable, "-m", "zsar_cli"]
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
}


def cpu_now() -> float:
    """CPU seconds of this process (all threads) and of its waited-for children."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measured(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of fn(); fn may return the CPU seconds its pool workers spent."""
    cpu0, start = cpu_now(), time.perf_counter()
    extra = fn()
    wall = time.perf_counter() - start
    cpu = cpu_now() - cpu0 + (extra if isinstance(extra, float) else 0.0)
    return wall, cpu


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


# Row 5: the others as whole commands, as a user runs zsar: a Python process that imports the
# library, decodes the 8 frames and saves them as JPEG files (PIL, the quality zsar uses).
TC_COMMAND = """
import sys
from pathlib import Path
from PIL import Image
from torchcodec.decoders import VideoDecoder
path, out = sys.argv[1], Path(sys.argv[2])
decoder = VideoDecoder(path)
meta = decoder.metadata
begin, end = meta.begin_stream_seconds, meta.end_stream_seconds
step = (end - begin) / 8
frames = decoder.get_frames_played_at([begin + step / 2 + k * step for k in range(8)]).data
for k, frame in enumerate(frames):
    Image.fromarray(frame.permute(1, 2, 0).numpy()).save(out / f"{k}.jpg", quality=90)
"""
AV_COMMAND = """
import sys
from pathlib import Path
import av
path, out = sys.argv[1], Path(sys.argv[2])
with av.open(path) as container:
    stream = container.streams.video[0]
    tb = stream.time_base
    start, duration = float(stream.start_time * tb), float(stream.duration * tb)
    for k in range(8):
        t = start + duration / 16 + k * duration / 8
        container.seek(int(t / tb), stream=stream)
        for frame in container.decode(stream):
            if frame.time >= t:
                frame.to_image().save(out / f"{k}.jpg", quality=90)
                break
"""


def command(script: str, path: str, out: Path) -> None:
    out.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-c", script, path, str(out)], check=True, env=ENV)


def _warm(_: int) -> int:
    import av  # noqa: F401
    from torchcodec.decoders import VideoDecoder  # noqa: F401

    return 0


def tc_uniform_frames(path: str, n: int) -> object:
    """tc_uniform, returning the frames (H×W×3 uint8) as a script that keeps them must."""
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(path, dimension_order="NHWC")
    meta = decoder.metadata
    begin, end = meta.begin_stream_seconds, meta.end_stream_seconds
    return decoder.get_frames_played_at(uniform_targets(begin, end - begin, n)).data.numpy()


def _cpu_task(fn: Callable[..., object], path: str, *extra: object) -> float:
    """fn(path, *extra) in a pool worker; returns the CPU seconds it took there."""
    start = cpu_now()
    fn(path, *extra)
    return cpu_now() - start


# ---------------------------------------------------------------------------------------------


def peak_rss_mb(cmd: list[str]) -> float:
    """Peak summed RSS of a process tree, sampled every 20 ms."""
    proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
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
    subprocess.run([*ZSAR, "extract-frames", *args], check=True, capture_output=True, env=ENV)


def versions() -> str:
    from zsar_cli.video import decoder_version

    parts = [f"zsar decoder: {decoder_version('pyav')}"]
    try:
        import torchcodec

        parts.append(f"torchcodec {torchcodec.__version__}")
    except Exception as exc:  # the bench needs it; say why it is missing
        parts.append(f"torchcodec unavailable ({exc})")
    import importlib.util

    if importlib.util.find_spec("pandas") is not None:
        # pyarrow imports pandas, when installed, at its first pa.array: part of row 4's
        # start-up (zsar does not depend on pandas; a fresh install has none).
        parts.append("pandas installed (adds its import to every zsar command)")
    exe = shutil.which("ffmpeg")
    if exe:
        first = subprocess.run([exe, "-version"], capture_output=True, text=True).stdout
        parts.append(" ".join(first.split()[:3]) if first else "ffmpeg ?")
    return "; ".join(parts)


def machine() -> str:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0]
    busy = (
        "BUSY (load > cores: wall times are noisy, read the CPU ratios)"
        if load > (cores or 1)
        else "idle"
    )
    return f"{platform.node()}, {cores} cores, load average {load:.2f}: {busy}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2-min video, 3 repeats, no RSS")
    parser.add_argument("--repeat", type=int, default=None, help="default 5 (--quick: 3)")
    parser.add_argument("--minutes", type=float, default=None, help="default 10 (--quick: 2)")
    parser.add_argument("--long-minutes", type=float, default=60.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--cli", action="store_true", help="time rows 1-3 as commands")
    parser.add_argument("--no-rss", action="store_true")
    parser.add_argument("--decoder", default="pyav", help="zsar's --decoder")
    parser.add_argument("--image-format", default="jpeg", help="zsar's --image-format")
    args = parser.parse_args()
    repeat = args.repeat or (3 if args.quick else 5)
    minutes = args.minutes or (2.0 if args.quick else 10.0)
    began = time.perf_counter()
    now = datetime.datetime.now(datetime.timezone.utc)
    print(f"# bench/extract_frames.py, {now:%Y-%m-%d %H:%M} UTC")
    print(f"# machine: {machine()}")
    print(f"# {versions()}")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        long = work / "long.mp4"
        t = timed(lambda: generate_background_video(long, minutes * 60, (640, 360), 30, objects=1))
        thirty = work / "thirty.mp4"
        generate_background_video(thirty, 30, (640, 360), 30, objects=1, unit_s=30)
        clips = [work / f"clip{i:02d}.mp4" for i in range(20)]
        for i, clip in enumerate(clips):
            generate_background_video(clip, 7, (320, 240), 25, seed=i, objects=2, unit_s=7)
        print(f"# generated the videos in {t:.1f} s (+ 30-s clip, 20 seven-second clips)")
        out = work / "f.parquet"
        dec = ["--decoder", args.decoder, "--image-format", args.image_format]
        startup = statistics.median(
            timed(lambda: subprocess.run([*ZSAR, "--version"], capture_output=True, env=ENV))
            for _ in range(3)
        )

        def zsar(config: ExtractConfig, videos: list[Path], cli_args: list[str]) -> Callable:
            if args.cli:
                return lambda: cli([*cli_args, *dec, "-o", str(out), "--force"])
            return lambda: run(videos, out, config, force=True)

        from zsar_cli.video import probe

        ten_s = probe(long).duration
        long_s, thirty_s, clip_s = str(long), str(thirty), [str(c) for c in clips]
        pool = ProcessPoolExecutor(2)
        list(pool.map(_warm, range(4)))
        _warm(0)

        def pooled(fn: Callable, *extra: object) -> Callable[[], float]:
            def go() -> float:
                columns = [[fn] * len(clip_s), clip_s, *[[e] * len(clip_s) for e in extra]]
                return float(sum(pool.map(_cpu_task, *columns)))

            return go

        cfg = {"decoder": args.decoder, "image_format": args.image_format}
        first_row = f"16 uniform frames, {minutes:g}-min 640x360"
        batch_row = "8 frames x 20 7-s 320x240 clips"
        cli_row = "8 frames of a 30-s clip (zsar: whole CLI)"
        commands_row = "8 frames of a 30-s clip, each tool a command"
        rows: dict[str, dict[str, Callable[[], object]]] = {
            first_row: {
                "zsar": zsar(ExtractConfig(num_frames=16, **cfg), [long], [long_s, "-n", "16"]),
                "torchcodec": lambda: tc_uniform(long_s, 16),
                "pyav": lambda: av_uniform(long_s, 16),
                "ffmpeg": lambda: ffmpeg_seeks(long_s, uniform_targets(0, ten_s, 16)),
            },
            "1 fps, same video": {
                "zsar": zsar(ExtractConfig(fps=1, **cfg), [long], [long_s, "--fps", "1"]),
                "torchcodec": lambda: tc_fps(long_s, 1),
                "pyav": lambda: av_fps(long_s, 1),
                "ffmpeg": lambda: ffmpeg_filtered(long_s, "fps=1"),
            },
            batch_row: {
                "zsar": zsar(
                    ExtractConfig(num_frames=8, workers=2, **cfg),
                    clips,
                    [*clip_s, "-n", "8", "--workers", "2"],
                ),
                "torchcodec": pooled(tc_uniform, 8),
                "pyav": pooled(av_sequential_uniform, 8),
                "ffmpeg": pooled(ffmpeg_uniform_one_pass, 8, 7.0),
            },
            cli_row: {
                "zsar": lambda: cli([thirty_s, "-n", "8", *dec, "-o", str(out), "--force"]),
                "torchcodec": lambda: tc_uniform(thirty_s, 8),
                "pyav": lambda: av_uniform(thirty_s, 8),
                "ffmpeg": lambda: ffmpeg_seeks(thirty_s, uniform_targets(0, 30.0, 8)),
            },
            commands_row: {
                "zsar": lambda: cli([thirty_s, "-n", "8", *dec, "-o", str(out), "--force"]),
                "torchcodec": lambda: command(TC_COMMAND, thirty_s, work / "tc_jpegs"),
                "pyav": lambda: command(AV_COMMAND, thirty_s, work / "av_jpegs"),
                "ffmpeg": lambda: ffmpeg_seeks(thirty_s, uniform_targets(0, 30.0, 8)),
            },
        }
        tools = ["zsar", "torchcodec", "pyav", "ffmpeg"]
        others = tools[1:]
        zsar_how = "zsar CLI minus its start-up" if args.cli else "zsar library call"
        print(
            f"# medians of {repeat} interleaved runs, seconds (rows 1-3: {zsar_how}, "
            f"--image-format {args.image_format}; zsar CLI start-up {startup:.2f} s)"
        )
        header = " | ".join(f"zsar/{o}" for o in others)
        print(
            f"| work | {' | '.join(tools)} | {header} | CPU s: {' | '.join(tools)} | CPU {header} |"
        )
        print(f"|---|{'---|' * (2 * len(tools) + 2 * len(others))}")
        results: dict[str, dict[str, tuple[float, float]]] = {}
        for name, fns in rows.items():
            samples: dict[str, list[tuple[float, float]]] = {tool: [] for tool in tools}
            for _ in range(repeat):
                for tool in tools:
                    samples[tool].append(measured(fns[tool]))
            wall = {tool: statistics.median(w for w, _ in v) for tool, v in samples.items()}
            cpu = {tool: statistics.median(c for _, c in v) for tool, v in samples.items()}
            if args.cli and name not in (cli_row, commands_row):
                wall["zsar"] = max(0.0, wall["zsar"] - startup)
            results[name] = {tool: (wall[tool], cpu[tool]) for tool in tools}
            cells = " | ".join(f"{wall[tool]:.3f}" for tool in tools)
            ratios = " | ".join(f"{wall['zsar'] / wall[o]:.2f}x" for o in others)
            cpu_cells = " | ".join(f"{cpu[tool]:.2f}" for tool in tools)
            cpu_ratios = " | ".join(f"{cpu['zsar'] / cpu[o]:.2f}x" for o in others)
            print(f"| {name} | {cells} | {ratios} | {cpu_cells} | {cpu_ratios} |", flush=True)
        # Row 3's two like-for-like variants: torchcodec's frames sent back to the parent (the
        # baseline above drops them in the workers), and zsar writing the same RGB arrays
        # (--image-format raw) instead of JPEG. Interleaved with the baseline again.
        raw_cfg = ExtractConfig(num_frames=8, workers=2, decoder=args.decoder, image_format="raw")
        raw_args = [*clip_s, "-n", "8", "--workers", "2", "--decoder", args.decoder]

        def raw_run() -> object:
            if args.cli:
                return cli([*raw_args, "--image-format", "raw", "-o", str(out), "--force"])
            return run(clips, out, raw_cfg, force=True)

        variants: dict[str, Callable[[], object]] = {
            "torchcodec (baseline)": rows[batch_row]["torchcodec"],
            "torchcodec, frames back": lambda: list(
                pool.map(tc_uniform_frames, clip_s, [8] * len(clip_s))
            ),
            "zsar jpeg": rows[batch_row]["zsar"],
            "zsar raw": raw_run,
        }
        walls: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(repeat):
            for name, fn in variants.items():
                walls[name].append(measured(fn)[0])
        base = statistics.median(walls["torchcodec (baseline)"])
        shown = ", ".join(
            f"{name} {statistics.median(w):.3f} s ({statistics.median(w) / base:.2f}x)"
            for name, w in walls.items()
        )
        print(f"# row 3 variants, wall (ratio to the torchcodec baseline): {shown}")
        pool.shutdown()
        rates = ", ".join(
            f"{tool} {len(clips) / results[batch_row][tool][0]:.1f}" for tool in tools
        )
        print(f"# clips/s, row 3 (2 workers): {rates} (issue #17 baseline: torchcodec ~62 idle)")
        # The issue's own method for its table: the zsar CLI with its start-up subtracted.
        command_s = results[cli_row]["zsar"][0] - startup
        print(
            f"# row 4 minus zsar's start-up ({startup:.2f} s, `zsar --version`): zsar "
            f"{command_s:.3f} s vs torchcodec in process {results[cli_row]['torchcodec'][0]:.3f} s"
            f" = {command_s / results[cli_row]['torchcodec'][0]:.2f}x"
        )
        print(
            "# targets, zsar/torchcodec wall on an idle machine: <= 1.0x (fps row <= 1.05x); "
            f"machine now: {machine()}; bench took {time.perf_counter() - began:.0f} s"
        )

        if args.no_rss or args.quick:
            return
        cmd = [*ZSAR, "extract-frames", "--fps", "1", *dec, "-o"]
        # Writers buffer at most one row group (artifacts.ROW_GROUP_BYTES = 64 MiB), so memory
        # rises until that cap is reached (~50 min of 640x360 1-fps JPEGs) and is flat after it.
        rss = {minutes: peak_rss_mb([*cmd, str(work / "rss_a.parquet"), long_s])}
        for length in (args.long_minutes, 2 * args.long_minutes):
            long_video = work / f"long{length:g}.mp4"
            generate_background_video(long_video, length * 60, (640, 360), 25)
            rss[length] = peak_rss_mb([*cmd, str(work / f"rss{length:g}.parquet"), str(long_video)])
        shown = " | ".join(f"{m:g} min {v:6.1f} MB" for m, v in rss.items())
        half, full = rss[args.long_minutes], rss[2 * args.long_minutes]
        print(
            f"peak RSS --fps 1: {shown} | {args.long_minutes:g}->{2 * args.long_minutes:g} min "
            f"growth {full / half:.2f}x (target < 500 MB, flat)"
        )


if __name__ == "__main__":
    main()
