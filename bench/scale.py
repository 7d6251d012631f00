"""Benchmark of dataset-scale execution: the ZEAL chain on many short world videos, run four ways
on this machine, as throughput ratios against one local process, then a 1,000-hour projection.

1. one local process per stage (`zsar extract-frames → encode → encode-text → query-lvlm →
   localize`, the CLI as a user runs it);
2. N local workers: every stage as N concurrent `--shard i/N` processes (stage by stage);
3. an N-task Slurm array: `make slurm-pipeline SHARDS=N` on a one-node Slurm cluster started
   here (tests/slurm_cluster.py; needs root and Debian's slurm packages, skipped otherwise),
   timed from submission to the merge job's end;
4. Ray on the same machine: one driver running the four stages with `--engine ray` (N CPUs).

Each is a throughput ratio (videos/s over the local process's). The projection for 1,000 hours
of 640x360 video at 1 fps (3.6 M frames) uses per-frame costs in core time (CPU seconds, which
the load of other jobs does not inflate as it inflates wall time): decoding and CLIP ViT-B/32
(random init, same compute) measured here, and the LVLM at real size from README's "LVLM costs
at real size" (bench/query_lvlm.py --real: SmolVLM2-256M at its published size, 640x360 frames,
2 CPU threads: 2.4 core-s for one question, 2.9 core-s for ZEAL's 6 questions of 3 labels, the
vision tower once per frame and each further question on the cached prefix; `--lvlm-core-s` to
use other figures). GPU per-frame costs are assumptions unless given (`--gpu-*`), and printed as
such.

On a machine shared with other jobs wall times swing with their load: run it on an idle machine
for stable ratios (the CPU seconds of the local variants are printed beside them).

Run: python bench/scale.py [--quick] [--videos 24] [--workers 2] [--labels 3] [--skip-slurm]
     [--skip-ray]        (--quick: 6 videos, 1 label, a 20 s decode clip: under 3 minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Spinning OpenMP workers starve each other on a machine that runs other jobs (measured: 10x
# slower forwards): sleep instead. Before torch is imported, here and in every child.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CLIP, LVLM = "builtin:world-clip", "builtin:world-lvlm"
FPS, SIZE = "1", "96"
# README "LVLM costs at real size" (docs/benchmarks.md): SmolVLM2-256M at its published size,
# 640x360 frames, 2 CPU threads, core-seconds per frame: one question, and ZEAL with 3 labels
# (6 questions; the image and the shared prompt prefix are encoded once per frame).
REAL_ONE_QUESTION_CORE_S = 2.4
REAL_ZEAL3_CORE_S = 2.9


def real_lvlm_core_s(questions: int) -> float:
    """Core-seconds per frame of `questions` ZEAL questions at real size: the first question's
    cost, then each further one's share of the measured 6-question figure."""
    further = (REAL_ZEAL3_CORE_S - REAL_ONE_QUESTION_CORE_S) / 5
    return REAL_ONE_QUESTION_CORE_S + (questions - 1) * further


def zsar() -> list[str]:
    return [sys.executable, "-m", "zsar_cli"]


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of child processes) of `fn`."""
    cpu0, start = child_cpu(), time.perf_counter()
    fn()
    return time.perf_counter() - start, child_cpu() - cpu0


def env() -> dict[str, str]:
    out = dict(os.environ)
    out.update(
        PYTHONPATH=f"{ROOT}:{out.get('PYTHONPATH', '')}".rstrip(":"),
        ZSAR_NO_PROGRESS="1",
        HF_HUB_OFFLINE="1",
        OMP_WAIT_POLICY="PASSIVE",
    )
    return out


def run_all(commands: list[list[str]]) -> None:
    """Run the commands concurrently; fail loudly if one fails."""
    procs = [
        subprocess.Popen(c, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for c in commands
    ]
    for cmd, proc in zip(commands, procs, strict=True):
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd[2:5])} failed:\n{err.decode()[-2000:]}")


def command(*words: object) -> list[str]:
    return [*zsar(), *map(str, words)]


def stages(world: dict[str, Path], out: Path, shard: str | None) -> list[list[list[str]]]:
    """The chain's commands, stage by stage (with `shard` I/N: that shard's part; the text
    embeddings are made once, by shard 0)."""
    part = ["--shard", shard] if shard else []
    o = (lambda name: out / name) if shard else (lambda name: out / f"{name}.parquet")
    frames, emb, answers, text = o("frames"), o("emb"), o("answers"), out / "text.parquet"
    descriptions = world["descriptions"]
    extract = command(
        "extract-frames", world["videos"], "--fps", FPS, "--size", SIZE, "--workers", 1
    )
    encode = command("encode", frames, "-m", CLIP, "--device", "cpu")
    encode_text = command(
        "encode-text", "--labels", world["labels"], "--templates", "none", "--descriptions"
    )
    encode_text += [str(descriptions), "-m", CLIP, "--device", "cpu", "-o", str(text)]
    query = command("query-lvlm", frames, "--descriptions", descriptions, "-m", LVLM)
    localize = command("localize", "--method", "zeal", "--embeddings", emb, "--text", text)
    localize += ["--answers", str(answers)]
    return [
        [[*extract, *part, "-o", str(frames)]],
        [[*encode, *part, "-o", str(emb)]],
        [encode_text] if shard is None or shard.startswith("0/") else [],
        [[*query, "--device", "cpu", *part, "-o", str(answers)]],
        [[*localize, *part, "-o", str(o("intervals"))]],
    ]


def local_chain(world: dict[str, Path], out: Path, workers: int) -> None:
    """Stage by stage; with workers > 1, each stage as that many concurrent shards."""
    out.mkdir(parents=True, exist_ok=True)
    if workers == 1:
        for stage in stages(world, out, None):
            run_all(stage)
        return
    per_shard = [stages(world, out, f"{i}/{workers}") for i in range(workers)]
    for number in range(len(per_shard[0])):
        run_all([cmd for shard in per_shard for cmd in shard[number]])


RAY_DRIVER = """
import sys, time
from zsar_cli.engines import Engine
from zsar_cli.stages import encode, extract_frames, localize, query_lvlm
from zsar_cli.stages.encode_config import EncodeConfig, PromptConfig, TextEncodeConfig
from zsar_cli.stages.extract_frames_config import ExtractConfig
from zsar_cli.stages.localize_config import LocalizeConfig
from zsar_cli.stages.query_lvlm_config import QueryConfig
from zsar_cli.engines.ray_engine import encode_with_ray, extract_with_ray, ray_session
videos, labels, descriptions, out, cpus = sys.argv[1:6]
engine = Engine("ray")
with ray_session(None, num_cpus=int(cpus)):
    extract_with_ray([videos], f"{out}/frames.parquet", ExtractConfig(fps=1, size=96))
    encode_with_ray(f"{out}/frames.parquet", f"{out}/emb.parquet",
                    EncodeConfig(model="builtin:world-clip", device="cpu"), num_gpus_per_actor=0)
    encode.run_text(labels, f"{out}/text.parquet", TextEncodeConfig(model="builtin:world-clip",
        device="cpu", prompts=PromptConfig(templates="none", descriptions=descriptions)))
    query_lvlm.run(f"{out}/frames.parquet", f"{out}/answers.parquet",
        QueryConfig(model="builtin:world-lvlm", descriptions_file=descriptions, device="cpu"),
        engine=engine)
    localize.run(LocalizeConfig(method="zeal"), embeddings=f"{out}/emb.parquet",
        text=f"{out}/text.parquet", answers=f"{out}/answers.parquet",
        output=f"{out}/intervals.parquet", engine=engine)
"""


def ray_chain(world: dict[str, Path], out: Path, cpus: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    argv = [str(world[k]) for k in ("videos", "labels", "descriptions")] + [str(out), str(cpus)]
    run_all([[sys.executable, "-c", RAY_DRIVER, *argv]])


def slurm_chain(world: dict[str, Path], out: Path, shards: int) -> float:
    """Seconds from `make slurm-pipeline` to the end of its merge job."""
    from tests.slurm_cluster import LocalSlurm

    cluster = LocalSlurm(out / "slurm")
    cluster.start()
    try:
        shim = out / "bin"
        shim.mkdir(parents=True, exist_ok=True)
        (shim / "zsar").write_text(f'#!/bin/sh\nexec {sys.executable} -m zsar_cli "$@"\n')
        (shim / "zsar").chmod(0o755)
        job_env = env()
        job_env.update(
            PATH=f"{shim}:{job_env.get('PATH', '')}",
            SBATCH_ARGS="--cpus-per-task=1 --mem=400M",
            GPU_SBATCH_ARGS="--gres=none",
            CLIP_MODEL=CLIP,
            LVLM_MODEL=LVLM,
            DEVICE="cpu",
            PRECISION="fp32",
            FPS=FPS,
            SIZE=SIZE,
            DESCRIPTIONS=str(world["descriptions"]),
        )
        start = time.perf_counter()
        make = ["make", "-s", "--no-print-directory", "-C", str(ROOT), "slurm-pipeline"]
        make += [f"SHARDS={shards}", f"VIDEOS={world['videos']}", f"LABELS={world['labels']}"]
        done = cluster.run([*make, f"WORK={out / 'work'}"], env=job_env)
        jobs = dict(re.findall(r"([\w-]+)=(\d+)", done.stdout.splitlines()[-1]))
        states = cluster.wait(jobs.values(), timeout=3600)
        elapsed = time.perf_counter() - start
        if any(s != "COMPLETED" for s in states.values()):
            raise SystemExit(f"Slurm pipeline failed: {states}")
        return elapsed
    finally:
        cluster.stop()


def make_world(root: Path, videos: int, labels: int) -> dict[str, Path]:
    from zsar_cli.synthetic import SynthConfig, generate_world

    generate_world(
        root / "world",
        SynthConfig(
            trimmed=0,
            untrimmed=videos,
            anomaly=0,
            seed=9,
            width=160,
            height=120,
            fps=10,
            untrimmed_duration=(4.0, 6.0),
            instances=(1, 1),
            instance_duration=(2.0, 3.0),
            phase_seconds=1.0,
        ),
    )
    everything = json.loads((root / "world" / "descriptions.json").read_text())[:labels]
    (root / "labels.txt").write_text("".join(d["label"] + "\n" for d in everything))
    (root / "desc.json").write_text(json.dumps(everything))
    return {
        "videos": root / "world" / "untrimmed" / "list.csv",
        "labels": root / "labels.txt",
        "descriptions": root / "desc.json",
    }


def cpu_seconds(fn: Callable[[], object]) -> float:
    """CPU seconds (all threads, and waited-for children such as ffmpeg) that `fn` takes: core
    time, which other jobs' load on the machine does not inflate as it inflates wall time."""
    own, kids = time.process_time(), child_cpu()
    fn()
    return time.process_time() - own + child_cpu() - kids


def vit_b32_core_ms_per_frame(batch: int = 16) -> float:
    """A bare forward of a random-init ViT-B-32 (the same compute as the pretrained one)."""
    import open_clip
    import torch

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None).eval()
    images = torch.randn(batch, 3, 224, 224)
    with torch.no_grad():
        model.encode_image(images[:2])
        return cpu_seconds(lambda: model.encode_image(images)) / batch * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="6 videos, 1 label: < 3 minutes")
    parser.add_argument("--videos", type=int, default=None, help="default 24 (quick: 6)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--labels", type=int, default=None, help="labels asked (default 3, quick 1)"
    )
    parser.add_argument("--skip-slurm", action="store_true")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--zeal-labels", type=int, default=3, help="labels per frame, 1,000 h")
    parser.add_argument(
        "--lvlm-core-s",
        type=float,
        default=None,
        help="real-size LVLM core-seconds per frame for the projection (default: README's)",
    )
    parser.add_argument("--gpu-clip-ms", type=float, default=0.5, help="assumed unless measured")
    parser.add_argument(
        "--gpu-vision-ms", type=float, default=15.0, help="real-size LVLM vision tower per frame"
    )
    parser.add_argument(
        "--gpu-question-ms", type=float, default=5.0, help="real-size LVLM question given features"
    )
    args = parser.parse_args()
    videos = args.videos or (6 if args.quick else 24)
    labels = args.labels or (1 if args.quick else 3)
    n = args.workers
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        world = make_world(work, videos, labels)
        results = run_variants(world, work, n, args.skip_slurm, args.skip_ray)
        from zsar_cli.artifacts import read_artifact

        frames_total = read_artifact(work / "local1" / "frames.parquet").table.num_rows
        base = results[0][1]
        print(
            f"\nZEAL chain on {videos} world videos ({frames_total} frames at 1 fps, "
            f"{2 * labels} LVLM questions per frame), {os.cpu_count()} cores:"
        )
        print("| run | wall s | videos/s | throughput vs 1 process | CPU s (children) |")
        print("|---|---|---|---|---|")
        for name, wall, cpu in results:
            print(
                f"| {name} | {wall:.1f} | {videos / wall:.3f} | {base / wall:.2f}x | "
                + (f"{cpu:.1f} |" if cpu is not None else "- |")
            )
        projection(work, args, results, n, clip_seconds=20 if args.quick else 60)
    print(f"\n(bench ran {time.perf_counter() - started:.0f} s)")


def run_variants(
    world: dict[str, Path], work: Path, n: int, skip_slurm: bool, skip_ray: bool
) -> list[tuple[str, float, float | None]]:
    """(name, wall s, children's CPU s or None) of each way of running the chain."""
    results: list[tuple[str, float, float | None]] = []
    wall, cpu = timed(lambda: local_chain(world, work / "local1", 1))
    results.append(("1 local process per stage", wall, cpu))
    wall, cpu = timed(lambda: local_chain(world, work / "localN", n))
    results.append((f"{n} local workers (--shard i/{n} per stage)", wall, cpu))
    if not skip_slurm:
        from tests.slurm_cluster import unavailable

        reason = unavailable() or (None if shutil.which("make") else "make not installed")
        if reason:
            print(f"Slurm skipped: {reason}")
        else:
            seconds = slurm_chain(world, work / "slurm", n)
            results.append((f"{n}-task Slurm array (make slurm-pipeline)", seconds, None))
    if not skip_ray:
        try:
            import ray  # noqa: F401
        except ImportError:
            print("Ray skipped: pip install 'zsar[ray]'")
        else:
            wall, _ = timed(lambda: ray_chain(world, work / "ray", n))
            # Ray's workers are not this process's children: their CPU time is not counted.
            results.append((f"Ray, {n} CPUs on this machine (--engine ray)", wall, None))
    return results


def projection(
    work: Path,
    args: argparse.Namespace,
    results: list[tuple[str, float, float | None]],
    n: int,
    clip_seconds: int,
) -> None:
    """The 1,000-hour projection: per-frame core time of each step × 3.6 M frames."""
    from zsar_cli.stages import extract_frames
    from zsar_cli.stages.extract_frames_config import ExtractConfig
    from zsar_cli.synthetic import generate_background_video

    clip = generate_background_video(work / "clip.mp4", clip_seconds, (640, 360), 25, seed=0)
    decode_s = cpu_seconds(
        lambda: extract_frames.run([clip], work / "decode.parquet", ExtractConfig(fps=1))
    )
    decode_core_ms = decode_s / clip_seconds * 1000  # one frame per second of the clip
    clip_core_ms = vit_b32_core_ms_per_frame()
    q = 2 * args.zeal_labels
    if args.lvlm_core_s is not None:
        lvlm_ms, source = args.lvlm_core_s * 1000, "given with --lvlm-core-s"
    else:
        lvlm_ms = real_lvlm_core_s(q) * 1000
        source = "README: 2.4 core-s for 1 question, 2.9 for 6"
    plain_ms = q * REAL_ONE_QUESTION_CORE_S * 1000
    gpu_frame_ms = args.gpu_vision_ms + q * args.gpu_question_ms
    print(
        f"\nprojection, 1,000 h of 640x360 video at 1 fps = 3.6 M frames, ZEAL with {q} "
        "questions per frame (core time: what this machine's load does not inflate):"
    )
    print("| step | per frame | for 3.6 M frames |")
    print("|---|---|---|")
    table = [
        ("decode + sample 640x360 at 1 fps (measured)", decode_core_ms, "core-h"),
        ("CLIP ViT-B/32 on the CPU (measured)", clip_core_ms, "core-h"),
        (
            f"real-size LVLM (SmolVLM2-256M), {q} questions, image once per frame ({source})",
            lvlm_ms,
            "core-h",
        ),
        (f"same, a full pass per question ({q} × 2.4 core-s)", plain_ms, "core-h"),
        ("CLIP ViT-B/32 fp16 on one GPU (assumed)", args.gpu_clip_ms, "GPU-h"),
        (
            f"real-size LVLM on one GPU (assumed: {args.gpu_vision_ms} ms vision + {q} × "
            f"{args.gpu_question_ms} ms)",
            gpu_frame_ms,
            "GPU-h",
        ),
    ]
    for step, ms, unit in table:
        print(f"| {step} | {ms:,.1f} ms | {hours(ms):,.0f} {unit} |")
    cpu_total = hours(decode_core_ms + clip_core_ms + lvlm_ms)
    print(f"CPU total: ~{cpu_total:,.0f} core-hours = ~{cpu_total / 32:,.0f} 32-core node-hours")
    base = results[0][1]
    scaling = {name: base / wall / n for name, wall, _ in results[1:]}
    for name, efficiency in scaling.items():
        print(f"scaling efficiency of {name}: {efficiency:.2f} per worker")
    best = max(scaling.values()) if scaling else 1.0
    for gpus in (8, 64):
        wall_h = hours(gpu_frame_ms + args.gpu_clip_ms) / (gpus * min(1.0, best))
        print(f"{gpus}-task GPU array at that efficiency: ~{wall_h:.1f} h wall for 1,000 h")


def hours(ms_per_frame: float) -> float:
    """Hours of compute for 3.6 M frames (1,000 h at 1 fps) at `ms_per_frame` each."""
    return 3.6e6 * ms_per_frame / 1000 / 3600


if __name__ == "__main__":
    main()
