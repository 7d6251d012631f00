#!/usr/bin/env python3
"""k-shot curve of in-context examples (`classify --lvlm --examples`) on the synthetic world,
with label names neither model can read.

The world of `examples/world_kshot.py` (every label renamed to a nonsense word, a support pool
and a disjoint test set). For k = 0, 1, 2, 4, 8 the first k support clips (one class after
another, so k ≤ 12 examples cover k classes) are shown to the world LVLM with their answer's
letter before each test clip's multiple-choice question over all 12 labels, through the CLI:

    zsar classify OUT/test.csv -l OUT/labels.txt -m builtin:world-clip --lvlm builtin:world-lvlm \
        --shortlist 12 --frames F --examples OUT/examples-K.csv -o P
    zsar score P --json                                     # top-1

plus the same with the real label names at k = 0 (what the model does when it can read the
names) for reference. Usage:

    python examples/world_icl.py OUT [--per-class 6] [--support-pool 2] [--frames 2] [--seed 31]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from world_kshot import NONSENSE, make_world, top1, zsar

SHOTS = (0, 1, 2, 4, 8)
LVLM = "builtin:world-lvlm"


def _rows(listing: Path) -> list[tuple[str, str]]:
    lines = listing.read_text().splitlines()[1:]
    return [(v, lab) for v, lab in (line.split(",", 1) for line in lines if line)]


def _examples_file(support: Path, k: int, target: Path) -> Path:
    """The first k support clips, one class after another (round robin over the classes)."""
    by_class: dict[str, list[str]] = {}
    for video, label in _rows(support):
        by_class.setdefault(label, []).append(video)
    order = [(v, lab) for i in range(max(map(len, by_class.values()))) for lab, vs in
             by_class.items() if i < len(vs) for v in [vs[i]]]  # fmt: skip
    target.write_text("source,label\n" + "".join(f"{v},{lab}\n" for v, lab in order[:k]))
    return target


def classify(test: Path, labels: Path, out: Path, frames: int, examples: Path | None) -> float:
    extra = ["--examples", examples] if examples is not None else []
    zsar("classify", test, "-l", labels, "-m", "builtin:world-clip", "--lvlm", LVLM,
         "--shortlist", 12, "--frames", frames, "--device", "cpu", "-o", out, "--force",
         *extra)  # fmt: skip
    return top1(out)


def curve(out: Path, per_class: int, pool: int, frames: int, seed: int) -> dict[str, dict]:
    out.mkdir(parents=True, exist_ok=True)
    labels, support, test = make_world(out, per_class, pool, seed)
    table: dict[str, dict] = {"in-context examples (nonsense names)": {}}
    for k in SHOTS:
        if k > 12 * pool:
            continue
        examples = _examples_file(support, k, out / f"examples-{k}.csv")
        top = classify(test, labels, out / f"pred-icl-{k}.parquet", frames, examples)
        table["in-context examples (nonsense names)"][k] = top
    # Reference: the real names, no examples.
    real_labels = out / "labels-real.txt"
    real_labels.write_text("\n".join(NONSENSE) + "\n")
    real_test = out / "test-real.csv"
    names = {v: k for k, v in NONSENSE.items()}
    real_test.write_text("video,label\n" + "".join(f"{v},{names[lab]}\n" for v, lab in _rows(test)))
    top = classify(real_test, real_labels, out / "pred-real-0.parquet", frames, None)
    table["no examples, real names (reference)"] = {0: top}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-class", type=int, default=6, help="world clips per class")
    parser.add_argument("--support-pool", type=int, default=2, help="support clips per class")
    parser.add_argument("--frames", type=int, default=2, help="frames per clip (query, example)")
    parser.add_argument("--seed", type=int, default=31)
    args = parser.parse_args()
    table = curve(args.out, args.per_class, args.support_pool, args.frames, args.seed)
    lines = ["| | " + " | ".join(f"k={k}" for k in SHOTS) + " |", "|---|" + "---:|" * len(SHOTS)]
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{row[k]:.3f}" if k in row else "" for k in SHOTS) + " |")  # fmt: skip
    n_test = 12 * (args.per_class - args.support_pool)
    lines.append(f"\n{n_test} test clips, 12 options (chance 0.083), {args.frames} frames each.")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
