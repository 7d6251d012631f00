"""Zero-shot classification recipes with CLIP: `ucf101`, `hmdb51`, `k600`.

The seed's rows: class names alone, the template ensemble, description attributes (Kim et al.:
each class scored by its "{label}, which has {descriptor}" prompts) and the random-descriptor
control (the same number of random words: how much of the gain is the descriptors' content), all
over the zero-shot class splits: UCF101 and HMDB51 50% of the classes, 10 seeded splits; K600 the
novel classes it adds over K400, 3 splits of 160. Mean ± std over the splits (population std).

Input: the dataset folder as distributed (UCF101: `UCF-101/` + `ucfTrainTestlist/`; HMDB51: class
folders + `testTrainMulti_7030_splits/`; Kinetics-600: `validate.csv` + the clips named
`{youtube_id}_{start:06d}_{end:06d}.mp4`, and a K400 class list for the novel classes).
Descriptions: `--descriptions FILE`, else `zsar describe` with `--describe-model`, else that row
is left out (noted). Settings: `frames` (8 per video), `split` (1: the official split's test
list), `splits` (the --class-splits spec), `base` (K600: the K400 class list).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from zsar_cli.datasets import load_ground_truth
from zsar_cli.recipes import (
    Row,
    Settings,
    Table,
    find_file,
    locate,
    metric_summary,
    recipe,
    write_list,
    zsar,
)

PROMPT_ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("class names", ("--templates", "none")),
    ("template ensemble", ("--templates", "video")),
    ("description attributes", ("--templates", "none", "--descriptions", "{descriptions}")),
    ("random-descriptor control", ("--templates", "none", "--random-descriptors", "8")),
)


def _descriptions(s: Settings, labels: Path) -> str | None:
    if s.descriptions:
        return s.descriptions
    if s.describe_model:
        out = s.out / "descriptions.parquet"
        zsar("describe", "-l", labels, "-m", s.describe_model, "--device", s.device, "-o", out)
        return str(out)
    return None


def _prompt_rows(
    s: Settings,
    videos: str | Path,
    gt: str | Path,
    splits: str,
    extra_score: list[str],
    extract_args: Sequence[str] = (),
) -> tuple[list[Row], list[str]]:
    """Embed the videos once, classify them under each prompt setting, score over the splits."""
    frames, emb = s.out / "frames.parquet", s.out / "emb.parquet"
    labels = s.out / "labels.txt"
    zsar("extract-frames", videos, "-n", s.get("frames", "8"), "-o", frames, *extract_args)
    zsar("encode", frames, "-m", s.clip, "--device", s.device, "-o", emb)
    descriptions = _descriptions(s, labels)
    rows: list[Row] = []
    notes: list[str] = []
    for name, args in PROMPT_ROWS:
        if "{descriptions}" in args and descriptions is None:
            notes.append(f"{name}: left out (give --descriptions FILE or --describe-model SPEC)")
            continue
        argv = [a.replace("{descriptions}", descriptions or "") for a in args]
        slug = name.split()[0]
        pred = s.out / f"{slug}.parquet"
        zsar("classify", emb, "--labels", labels, *argv, "-o", pred)
        metrics = s.out / f"{slug}_metrics.parquet"
        zsar("score", pred, "--gt", gt, "--class-splits", splits, *extra_score, "-o", metrics,
             "--force")  # fmt: skip
        summary = metric_summary(metrics)["class_splits"]
        rows.append(Row(name, "top-1", summary["top1_mean"], std=summary["top1_std"]))
    notes.append(f"CLIP {s.clip}; {s.get('frames', '8')} frames per video; splits {splits}.")
    return rows, notes


def _with_reference(rows: list[Row], references: dict[str, str]) -> list[Row]:
    for row in rows:
        row.reference = references.get(row.name, "—")
    return rows


def _listed_videos(s: Settings, gt_path: Path, fmt: str | None = None, split: int = 1) -> Path:
    _, gt = load_ground_truth(gt_path, fmt, split)
    truth: dict[str, str] = gt.labels  # type: ignore[union-attr]
    rows = list(zip(locate(s.root, list(truth), gt_path), truth.values(), strict=True))
    labels = sorted({label for _, label in rows})
    (s.out / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    return write_list(s.out / "test.csv", rows)


@recipe("ucf101")
def ucf101(s: Settings) -> Table:
    split = s.get("split", "1")
    testlist = find_file(s.root, f"testlist0{split}.txt")
    videos = _listed_videos(s, testlist)
    splits = s.get("splits", "half:10")
    rows, notes = _prompt_rows(s, videos, testlist, splits, [])
    refs = {
        "template ensemble": "73.8 (CLIP ViT-B/16)",
        "description attributes": "81.0 (Kim et al.)",
    }
    return Table(
        "ucf101", "UCF101 zero-shot top-1 (%), 50% class splits", _with_reference(rows, refs), notes
    )


@recipe("hmdb51")
def hmdb51(s: Settings) -> Table:
    split = int(s.get("split", "1"))
    first = find_file(s.root, f"*_test_split{split}.txt")
    folder = first.parent
    videos = _listed_videos(s, folder, "hmdb51", split)
    splits = s.get("splits", "half:10")
    rows, notes = _prompt_rows(s, videos, folder, splits, ["--gt-format", "hmdb51"])
    refs = {
        "template ensemble": "47.9 (CLIP ViT-B/16)",
        "description attributes": "53.1 (Kim et al.)",
    }
    return Table(
        "hmdb51", "HMDB51 zero-shot top-1 (%), 50% class splits", _with_reference(rows, refs), notes
    )


@recipe("k600")
def k600(s: Settings) -> Table:
    csv_path = find_file(s.root, "validate.csv", "val.csv", "test.csv")
    base = s.get("base", "")
    base_path = (
        Path(base) if base else find_file(s.root, "kinetics400_labels.txt", "k400_labels.txt")
    )
    video_root = s.get("video_root", "")
    if not video_root:
        for name in ("val", "validate", "test"):
            if (csv_path.parent / name).is_dir():
                video_root = str(csv_path.parent / name)
                break
    _, gt = load_ground_truth(csv_path, "kinetics")
    labels = sorted(set(gt.labels.values()))  # type: ignore[union-attr]
    (s.out / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    base_classes = {line.strip() for line in base_path.read_text().splitlines() if line.strip()}
    novel = [label for label in labels if label not in base_classes]
    size = min(160, max(1, round(len(novel) * 160 / 220)))
    splits = s.get("splits", f"novel:{size}x3")
    rows, notes = _prompt_rows(
        s,
        csv_path,
        csv_path,
        splits,
        ["--base-classes", str(base_path)],
        ["--root", video_root or str(csv_path.parent)],
    )
    refs = {
        "template ensemble": "68.1 (CLIP ViT-B/16)",
        "description attributes": "68.9 (Kim et al.)",
    }
    notes.append(f"{len(novel)} novel classes (not in {base_path.name}); {size} per split.")
    return Table(
        "k600",
        "Kinetics-600 novel classes, zero-shot top-1 (%)",
        _with_reference(rows, refs),
        notes,
    )
