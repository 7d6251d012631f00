"""Benchmark: Self-ReS (select tokens per path, answer from the kept ones) vs answering from all T
densely sampled frames in one prompt, wall time and peak memory, measured in the same run.

Input: T = R·S world frames (zsar_cli.synthetic) and a presence question; the shipped world LVLM
and a larger random-init FastVLM (SmolVLM-like text width, CPU-sized). Output (stdout): per
model, seconds and peak RSS increase of (a) the dense baseline — one forward pass over all T
frames — and (b) Self-ReS with each scorer — R selection passes of S frames plus the final pass
over the budget (default: the tokens of 16 frames) — with the ratio of (b) to (a). Each
measurement runs in a fresh forked process so peak memory is its own.

    python bench/select_tokens.py [--segments R] [--per-segment S] [--threads N] [--repeats K]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from zsar_cli.backends import load_lvlm
from zsar_cli.stages.select_tokens import FrameItem, select_video_tokens, uncapped_frames
from zsar_cli.stages.select_tokens_config import SelectTokensConfig
from zsar_cli.stages.self_res import answer_yes_no, kept_from_selection
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


def larger_model(folder: Path) -> str:
    """The world LVLM's family (FastVLM) and processor with a random-init 12-layer, 576-wide
    Qwen2 (SmolVLM-256M-like text width), sized for a CPU benchmark."""
    from transformers import AutoProcessor, FastVlmConfig, FastVlmForConditionalGeneration

    from zsar_cli.backends import builtin_lvlm_spec

    world = builtin_lvlm_spec("world-lvlm").partition(":")[2]
    processor = AutoProcessor.from_pretrained(world)
    reference = FastVlmConfig.from_pretrained(world)
    tok = processor.tokenizer
    config = FastVlmConfig(
        vision_config=reference.vision_config.to_dict(),
        text_config={
            "model_type": "qwen2",
            "vocab_size": len(tok),
            "hidden_size": 576,
            "intermediate_size": 1536,
            "num_hidden_layers": 12,
            "num_attention_heads": 9,
            "num_key_value_heads": 3,
            "max_position_embeddings": 8192,
            "pad_token_id": tok.pad_token_id,
            "eos_token_id": tok.eos_token_id,
        },
        image_token_id=reference.image_token_id,
        image_seq_length=reference.image_seq_length,
    )
    torch.manual_seed(0)
    FastVlmForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)
    return f"hf:{folder}"


def _measure(spec: str, method: str, segments: int, per_segment: int, threads: int, queue) -> None:
    torch.set_num_threads(threads)
    lvlm = load_lvlm(spec, device="cpu", dtype="float32")
    items, question = frames(segments * per_segment, per_segment)
    images = [f.image for f in items]
    with uncapped_frames(lvlm):
        lvlm.yes_no([images[:1]], [question])  # warm-up (allocator, lazy init)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if method == "dense":
        with uncapped_frames(lvlm):
            p = float(lvlm.yes_no([images], [question]).p_yes[0])
    else:
        scorer = method.partition(":")[2]
        cfg = SelectTokensConfig(model=spec, question=question, scorer=scorer).validated()
        sel = select_video_tokens(lvlm, "bench", items, question, cfg)
        p = answer_yes_no(lvlm, kept_from_selection(sel), 320, 240, question)[0]
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put((seconds, (peak - base) / 1024.0, p))


def measure(spec: str, method: str, args: argparse.Namespace) -> tuple[float, float]:
    ctx = mp.get_context("fork")
    times, mems = [], []
    for _ in range(args.repeats):
        queue = ctx.Queue()
        proc = ctx.Process(
            target=_measure,
            args=(spec, method, args.segments, args.per_segment, args.threads, queue),
        )
        proc.start()
        seconds, mib, _p = queue.get()
        proc.join()
        times.append(seconds)
        mems.append(mib)
    return float(np.median(times)), float(np.median(mems))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument("--per-segment", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()
    total = args.segments * args.per_segment
    print(f"T = {args.segments} paths × {args.per_segment} frames = {total}; budget 16 frames")
    with tempfile.TemporaryDirectory() as tmp:
        models = [("world-lvlm (tiny)", "builtin:world-lvlm")]
        if not args.skip_large:
            models.append(("fast_vlm random-init (text 576×12)", larger_model(Path(tmp) / "m")))
        for name, spec in models:
            dense_s, dense_mb = measure(spec, "dense", args)
            print(f"\n{name}")
            print(
                f"  dense (all {total} frames, one pass): {dense_s:7.3f} s  "
                f"peak +{dense_mb:7.1f} MiB"
            )
            for scorer in ("attention", "similarity"):
                self_s, self_mb = measure(spec, f"selfres:{scorer}", args)
                print(
                    f"  Self-ReS {scorer:>10} ({args.segments} paths + final): {self_s:7.3f} s  "
                    f"peak +{self_mb:7.1f} MiB  → time {self_s / dense_s:.2f}x, "
                    f"peak memory {self_mb / max(dense_mb, 1e-6):.2f}x of dense"
                )


if __name__ == "__main__":
    main()
