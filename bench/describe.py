"""Benchmark: `describe` with a random-init text LLM at SmolLM2-360M's published sizes.

Input: labels made up here, a model built from the published configuration with random weights
and a locally trained byte-level BPE (tests/text_lm.py). Output (stdout): records valid on the
first try, labels/s of the first pass and of the whole of `describe_labels` (guards and the
regeneration of rejected labels included; random weights never name the subject, so every label
is regenerated once), and two ratios measured on the same prompts and batches:

- constrained vs unconstrained: the schema-constrained first pass (without prefix sharing)
  against plain greedy `generate()` of as many new tokens with no logits processor (the
  constraint's overhead);
- shared prefix vs none: the first pass with and without reusing the KV cache of the prompts'
  common beginning (instructions and worked examples, ~90% of each prompt).

    python bench/describe.py [--size smollm2-360m|tiny] [--labels N] [--batch B]
                             [--max-new-tokens T] [--threads K]

Random weights write every string up to its cap or the budget, so each label costs about
`--max-new-tokens` decode steps; a trained model closes its strings sooner.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/text_lm.py, from a checkout

from tests.text_lm import build_model, build_tokenizer
from zsar_cli.backends.hf_text import HFTextGenerator
from zsar_cli.stages.describe import (
    DescribeConfig,
    describe_labels,
    prompt_for,
    record_schema,
)


def labels(n: int) -> list[str]:
    verbs = ["playing", "riding", "cutting", "throwing", "washing", "folding", "climbing"]
    things = ["guitar", "horse", "bread", "ball", "dishes", "kite", "bike", "cake", "rope", "car"]
    return [f"{v} {t}" for v in verbs for t in things][:n]


def timed(fn, what: str, n: int) -> float:
    """Run `fn`, print its labels/s (wall clock) and CPU seconds per label, return wall seconds.
    On a shared machine the wall clock includes waiting for cores; CPU time does not."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{what}: {n / wall:.3f} labels/s ({wall:.0f} s wall, {cpu / n:.1f} CPU-s per label)")
    sys.stdout.flush()
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="smollm2-360m", choices=("smollm2-360m", "tiny"))
    parser.add_argument("--labels", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    tokenizer = build_tokenizer(8192)
    tokenizer.padding_side = "left"
    model = build_model(args.size, tokenizer)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    gen = HFTextGenerator(f"hf:random/{args.size}", model, tokenizer, revision="seed0")
    names = labels(args.labels)
    cfg = DescribeConfig(model=gen.spec, batch_size=args.batch, max_new_tokens=args.max_new_tokens)
    schema = record_schema(cfg.descriptors)
    batches = [
        [prompt_for(label, cfg.descriptors) for label in names[i : i + args.batch]]
        for i in range(0, len(names), args.batch)
    ]
    print(
        f"{args.size}: {params:.0f} M parameters, vocab {model.config.vocab_size}, "
        f"{len(names)} labels, batch {args.batch}, {args.max_new_tokens} new tokens, "
        f"{args.threads} threads"
    )

    def first_pass() -> list[str]:
        return [
            text for b in batches for text in gen.generate_records(b, schema, cfg.max_new_tokens)
        ]

    n = len(names)
    answers: list[str] = []
    shared = timed(lambda: answers.extend(first_pass()), "first pass, constrained", n)
    valid = sum(1 for a in answers if _parses(schema, a))
    print(f"valid records on the first try: {valid}/{n}")
    gen.share_prefix = False
    unshared = timed(first_pass, "first pass, constrained, no prefix sharing", n)
    gen.share_prefix = True

    def plain() -> None:
        with torch.inference_mode():
            for b in batches:
                model.generate(
                    **gen._inputs(b),
                    max_new_tokens=cfg.max_new_tokens,
                    min_new_tokens=cfg.max_new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                )

    unconstrained = timed(plain, "plain generate(), unconstrained, no prefix sharing", n)
    print(f"constrained / unconstrained generate(): {unconstrained / unshared:.2f}x the speed")
    print(f"shared prefix / none: {unshared / shared:.2f}x the speed")
    results = []
    timed(lambda: results.append(describe_labels(names, gen, cfg)), "describe_labels", n)
    print(f"  ({results[0].regenerated} regenerated, {results[0].repaired} repaired)")


def _parses(schema, text: str) -> bool:
    try:
        schema.parse(text)
    except ValueError:
        return False
    return True


if __name__ == "__main__":
    main()
