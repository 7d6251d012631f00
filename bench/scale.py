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
(random init, same compute) measured here, and the real-size LVLM costs of the real-size LVLM
work (DESIGN.md §8: SmolVLM2-256M built at its published size, one yes/no question on a 640x360
frame 1.44 s on 2 CPU threads, 1.27 s of it in the vision tower; counted as 2 threads × those
times), or measured here with `--measure-real-size` (SigLIP-512 vision tower and SmolLM2-135M
language model at published sizes, random init). ZEAL asks 2 questions per label per frame;
with the vision tower run once per frame (image features reused across a frame's questions) a
frame costs vision + Q × question-without-vision, without reuse Q × question. GPU per-frame
costs are assumptions unless given (`--gpu-*`), and printed as such.

On a machine shared with other jobs wall times swing with their load: run it on an idle machine
for stable ratios (the CPU seconds of the local variants are printed beside them).

Run: python bench/scale.py [--videos 24] [--workers 2] [--labels 3] [--skip-slurm] [--skip-ray]
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
# DESIGN.md §8 (the real-size LVLM work): SmolVLM2-256M at its published size, 640x360 frame,
# 2 CPU threads.
REAL_QUESTION_S = 1.44
REAL_VISION_S = 1.27


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


def real_size_core_seconds() -> tuple[float, float]:
    """(vision tower, one question's language-model prefill) in core-seconds, of SmolVLM2-256M's
    parts at their published sizes (SigLIP at 512 px, SmolLM2-135M), random init."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(0)
    vision = SiglipVisionModel(
        SiglipVisionConfig(
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            patch_size=16,
            image_size=512,
        )
    ).eval()
    text = LlamaForCausalLM(
        LlamaConfig(
            hidden_size=576,
            intermediate_size=1536,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            vocab_size=49280,
            rope_theta=1e5,
            tie_word_embeddings=True,
        )
    ).eval()
    with torch.inference_mode():
        pixels = torch.randn(1, 3, 512, 512)
        vision(pixel_values=pixels)
        vision_s = cpu_seconds(lambda: vision(pixel_values=pixels))
        # 64 image tokens + ~40 prompt tokens of ZEAL's frame question.
        ids = torch.randint(0, 49280, (1, 104))
        text(input_ids=ids, logits_to_keep=1)
        text_s = cpu_seconds(lambda: text(input_ids=ids, logits_to_keep=1))
    return vision_s, text_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=24)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--labels", type=int, default=3, help="labels asked (2 questions each)")
    parser.add_argument("--skip-slurm", action="store_true")
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--measure-real-size", action="store_true")
    parser.add_argument("--zeal-labels", type=int, default=3, help="labels per frame, 1,000 h")
    parser.add_argument("--gpu-clip-ms", type=float, default=0.5, help="assumed unless measured")
    parser.add_argument(
        "--gpu-vision-ms", type=float, default=15.0, help="real-size LVLM vision tower per frame"
    )
    parser.add_argument(
        "--gpu-question-ms", type=float, default=5.0, help="real-size LVLM question given features"
    )
    args = parser.parse_args()
    n = args.workers
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        world = make_world(work, args.videos, args.labels)
        frames_total = None
        results: list[tuple[str, float, float | None]] = []

        wall, cpu = timed(lambda: local_chain(world, work / "local1", 1))
        results.append(("1 local process per stage", wall, cpu))
        from zsar_cli.artifacts import read_artifact

        frames_total = read_artifact(work / "local1" / "frames.parquet").table.num_rows
        wall, cpu = timed(lambda: local_chain(world, work / "localN", n))
        results.append((f"{n} local workers (--shard i/{n} per stage)", wall, cpu))
        if not args.skip_slurm:
            from tests.slurm_cluster import unavailable

            reason = unavailable() or (None if shutil.which("make") else "make not installed")
            if reason:
                print(f"Slurm skipped: {reason}")
            else:
                seconds = slurm_chain(world, work / "slurm", n)
                results.append((f"{n}-task Slurm array (make slurm-pipeline)", seconds, None))
        if not args.skip_ray:
            try:
                import ray  # noqa: F401

                wall, _ = timed(lambda: ray_chain(world, work / "ray", n))
                # Ray's workers are not this process's children: their CPU time is not counted.
                results.append((f"Ray, {n} CPUs on this machine (--engine ray)", wall, None))
            except ImportError:
                print("Ray skipped: pip install 'zsar[ray]'")

        base = results[0][1]
        print(
            f"\nZEAL chain on {args.videos} world videos ({frames_total} frames at 1 fps, "
            f"{2 * args.labels} LVLM questions per frame), {os.cpu_count()} cores:"
        )
        print("| run | wall s | videos/s | throughput vs 1 process | CPU s (children) |")
        print("|---|---|---|---|---|")
        for name, wall, cpu in results:
            print(
                f"| {name} | {wall:.1f} | {args.videos / wall:.3f} | {base / wall:.2f}x | "
                + (f"{cpu:.1f} |" if cpu is not None else "- |")
            )

        # --- 1,000 h projection
        from zsar_cli.synthetic import generate_background_video

        minute = generate_background_video(work / "minute.mp4", 60, (640, 360), 25, seed=0)
        from zsar_cli.stages import extract_frames
        from zsar_cli.stages.extract_frames_config import ExtractConfig

        decode_core_ms = (
            cpu_seconds(
                lambda: extract_frames.run([minute], work / "decode.parquet", ExtractConfig(fps=1))
            )
            / 60
            * 1000
        )  # 60 frames: one per second of the minute
        clip_core_ms = vit_b32_core_ms_per_frame()
        if args.measure_real_size:
            vision_s, text_s = real_size_core_seconds()
            source = "measured here at real size, random init, core time"
        else:
            # 2 threads × wall: an upper bound of the core time (both threads busy throughout).
            vision_s, text_s = 2 * REAL_VISION_S, 2 * (REAL_QUESTION_S - REAL_VISION_S)
            source = "DESIGN.md §8: 2 threads × its wall times"
        q = 2 * args.zeal_labels
        reuse_ms = (vision_s + q * text_s) * 1000
        plain_ms = q * (vision_s + text_s) * 1000
        hours = lambda ms: 1000 * 3600 * ms / 1000 / 3600  # noqa: E731  3.6 M frames
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
                f"real-size LVLM (SmolVLM2-256M), {q} questions, vision once per frame ({source})",
                reuse_ms,
                "core-h",
            ),
            ("same, vision tower for every question", plain_ms, "core-h"),
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
        cpu_node = hours(decode_core_ms + clip_core_ms + reuse_ms) / 32
        print(f"on 32-core CPU nodes: ~{cpu_node:,.0f} node-hours")
        scaling = {name: base / wall / n for name, wall, _ in results[1:]}
        for name, efficiency in scaling.items():
            print(f"scaling efficiency of {name}: {efficiency:.2f} per worker")
        best = max(scaling.values()) if scaling else 1.0
        for gpus in (8, 64):
            wall_h = hours(gpu_frame_ms + args.gpu_clip_ms) / (gpus * min(1.0, best))
            print(f"{gpus}-task GPU array at that efficiency: ~{wall_h:.1f} h wall for 1,000 h")


if __name__ == "__main__":
    main()
