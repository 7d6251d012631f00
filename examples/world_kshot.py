#!/usr/bin/env python3
"""k-shot curves of `zsar adapt` on the synthetic world, with label names CLIP cannot read.

Every world label is renamed to a nonsense word ("a red circle" → "a blicket", ...), so the
zero-shot text logits carry no information and what a head learns from k support clips per
class is all there is. For k = 0 (zero-shot), 1, 2, 4, 8 and each method (prototypes,
Tip-Adapter, GDA) the recipe fits an adapter on the first k clips of each class of a support
pool and scores a disjoint test set, through the CLI:

    zsar synth OUT/world --trimmed N ...                    # 12 labels, balanced
    (the labels file and both list files are rewritten with the nonsense names)
    zsar extract-frames OUT/support.csv -o OUT/support_frames.parquet --num-frames 8
    zsar encode OUT/support_frames.parquet -o OUT/support_emb.parquet -m builtin:world-clip
    (the same for OUT/test.csv)
    zsar adapt --support OUT/support_emb.parquet --shots K --method M -o OUT/adapter-M-K.parquet
    zsar classify OUT/test_emb.parquet -l OUT/labels.txt --adapter OUT/adapter-M-K.parquet -o P
    zsar score P --json                                     # top-1

(once at the adapter's default weight, once with --adapter-weight 10) and prints a markdown
table of top-1 per method, weight and k. Usage:

    python examples/world_kshot.py OUT [--per-class 12] [--support-pool 8] [--seed 31]

(`make recipe-world-kshot` runs it into build/kshot). The commands run in one process
(`zsar_cli.cli.app`), exactly as typed; each is echoed to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

SHOTS = (0, 1, 2, 4, 8)
METHODS = ("prototypes", "tip-adapter", "gda")
MODEL = "builtin:world-clip"
# --adapter-weight per row: None = the adapter's default (1); 10 lets the head outweigh text
# logits that carry no information.
WEIGHTS: tuple[float | None, ...] = (None, 10.0)

# One made-up word per world label (SYNTHWORLD.md), none of them English.
NONSENSE = {
    "a red circle": "a blicket",
    "a red square": "a dax",
    "a red triangle": "a wug",
    "a green circle": "a toma",
    "a green square": "a fep",
    "a green triangle": "a zorb",
    "a blue circle": "a kiki",
    "a blue square": "a bouba",
    "a blue triangle": "a gazzer",
    "a yellow circle": "a tulver",
    "a yellow square": "a modi",
    "a yellow triangle": "a pilk",
}


def zsar(*args: object) -> str:
    """Run one zsar command in this process; its stdout (SystemExit when it fails)."""
    from zsar_cli.cli.app import app

    argv = [str(a) for a in args]
    print("$ zsar " + " ".join(argv), file=sys.stderr)
    out = StringIO()
    with redirect_stdout(out):
        # Not standalone: click returns the exit code of typer.Exit instead of exiting.
        code = app(argv, prog_name="zsar", standalone_mode=False)
    if code not in (0, None):
        raise SystemExit(f"zsar {argv[0]} failed (exit {code})")
    return out.getvalue()


def _rewrite_list(source: Path, rows: Sequence[tuple[str, str]], target: Path) -> None:
    lines = ["video,label"] + [f"{source.parent / v},{NONSENSE[label]}" for v, label in rows]
    target.write_text("\n".join(lines) + "\n")


def make_world(out: Path, per_class: int, pool: int, seed: int) -> tuple[Path, Path, Path]:
    """The world, the nonsense labels file, the support pool list (the first `pool` clips of
    each class) and the test list (the rest)."""
    zsar(
        "synth", out / "world", "--trimmed", 12 * per_class, "--untrimmed", 0, "--anomaly", 0,
        "--seed", seed, "--size", "160x120", "--fps", 10, "--trimmed-duration", "2-3",
    )  # fmt: skip
    listing = out / "world" / "trimmed" / "list.csv"
    rows = [tuple(line.split(",", 1)) for line in listing.read_text().splitlines()[1:] if line]
    seen: dict[str, int] = {}
    support, test = [], []
    for video, label in rows:
        seen[label] = seen.get(label, 0) + 1
        (support if seen[label] <= pool else test).append((video, label))
    labels = out / "labels.txt"
    labels.write_text("\n".join(NONSENSE.values()) + "\n")
    _rewrite_list(listing, support, out / "support.csv")
    _rewrite_list(listing, test, out / "test.csv")
    return labels, out / "support.csv", out / "test.csv"


def embed(listing: Path, out: Path, name: str) -> Path:
    frames, emb = out / f"{name}_frames.parquet", out / f"{name}_emb.parquet"
    zsar("extract-frames", listing, "-o", frames, "--num-frames", 8, "--force")
    zsar("encode", frames, "-o", emb, "-m", MODEL, "--device", "cpu", "--dtype", "float32",
         "--force")  # fmt: skip
    return emb


def top1(predictions: Path) -> float:
    return float(json.loads(zsar("score", predictions, "--json"))["top1"])


def kshot(out: Path, per_class: int = 12, pool: int = 8, seed: int = 31) -> dict[str, dict]:
    """{row: {k: top-1}}, every number from `zsar score`. Rows: "zero-shot" (k = 0 only),
    each method at its default weight (1), and each method at --adapter-weight 10."""
    out.mkdir(parents=True, exist_ok=True)
    labels, support, test = make_world(out, per_class, pool, seed)
    support_emb, test_emb = embed(support, out, "support"), embed(test, out, "test")
    zero = out / "pred-zero-shot.parquet"
    zsar("classify", test_emb, "-l", labels, "-o", zero, "--force")
    table: dict[str, dict] = {"zero-shot": {0: top1(zero)}}
    for method in METHODS:
        for weight in WEIGHTS:
            table[row_name(method, weight)] = {0: table["zero-shot"][0]}
        for k in (s for s in SHOTS if 0 < s <= pool):
            adapter = out / f"adapter-{method}-{k}.parquet"
            zsar("adapt", "--support", support_emb, "--shots", k, "--method", method,
                 "-o", adapter, "--force")  # fmt: skip
            for weight in WEIGHTS:
                pred = out / f"pred-{method}-{k}-w{weight or 'default'}.parquet"
                given = [] if weight is None else ["--adapter-weight", weight]
                zsar("classify", test_emb, "-l", labels, "--adapter", adapter, *given,
                     "-o", pred, "--force")  # fmt: skip
                table[row_name(method, weight)][k] = top1(pred)
    return table


def row_name(method: str, weight: float | None) -> str:
    return f"{method} (weight {'1, default' if weight is None else f'{weight:g}'})"


def markdown(table: dict[str, dict], n_test: int | None = None) -> str:
    """The table as markdown: one row per method and weight, one column per k."""
    shots = [k for k in SHOTS if any(k in row for row in table.values())]
    lines = ["| method | " + " | ".join(f"k={k}" for k in shots) + " |"]
    lines.append("|---|" + "---:|" * len(shots))
    for name, row in table.items():
        if name == "zero-shot":
            continue
        cells = [f"{row[k]:.3f}" if k in row else "" for k in shots]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if n_test is not None:
        lines.append(
            f"\n{n_test} test clips, 12 classes (chance 0.083); k=0 is zero-shot classification "
            "with the nonsense names."
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-class", type=int, default=12, help="world clips per class")
    parser.add_argument("--support-pool", type=int, default=8, help="support clips per class")
    parser.add_argument("--seed", type=int, default=31)
    args = parser.parse_args()
    table = kshot(args.out, args.per_class, args.support_pool, args.seed)
    n_test = 12 * (args.per_class - args.support_pool)
    print(markdown(table, n_test))


if __name__ == "__main__":
    main()
