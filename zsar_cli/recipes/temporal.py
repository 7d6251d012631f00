"""Temporal recipes: ZEAL on THUMOS14 (`thumos14-zeal`) and free-text moment grounding on
Charades-STA (`charades-sta`).

Input: THUMOS14's test videos (`video_test_*.mp4`) and its temporal annotation folder
(`<Class>_test.txt`, `Ambiguous_test.txt`); Charades videos and `charades_sta_test.txt`.
Output: OUT/<recipe>/ with the artifacts and the table.

ZEAL needs each class's start/end questions: `--descriptions FILE`, else `zsar describe` with
`--describe-model` (default: the LVLM's language model). Settings: `fps` (1 for ZEAL, whose
constants were tuned at 1 fps; 2 for grounding).
"""

from __future__ import annotations

from pathlib import Path

from zsar_cli.datasets import load_ground_truth, read_charades_sta
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


@recipe("thumos14-zeal")
def thumos14_zeal(s: Settings) -> Table:
    first = find_file(s.root, "*_test.txt")
    folder = first.parent
    _, gt = load_ground_truth(folder, "thumos14")
    wanted = sorted(set(gt.videos))  # type: ignore[union-attr]
    listed = write_list(s.out / "test.csv", [(p, None) for p in locate(s.root, wanted, folder)])
    labels = s.out / "labels.txt"
    labels.write_text("\n".join(gt.classes) + "\n", encoding="utf-8")  # type: ignore[union-attr]
    frames, emb = s.out / "frames.parquet", s.out / "emb.parquet"
    zsar("extract-frames", listed, "--fps", s.get("fps", "1"), "-o", frames)
    zsar("encode", frames, "-m", s.clip, "--device", s.device, "-o", emb)
    descriptions = s.descriptions
    if descriptions is None:
        descriptions = str(s.out / "descriptions.parquet")
        zsar("describe", "-l", labels, "-m", s.describe_model or s.lvlm, "--device", s.device,
             "-o", descriptions)  # fmt: skip
    text, names = s.out / "text.parquet", s.out / "text_names.parquet"
    zsar("encode-text", "-l", labels, "--descriptions", descriptions, "--templates", "none",
         "-m", s.clip, "--device", s.device, "-o", text)  # fmt: skip
    zsar("encode-text", "-l", labels, "-m", s.clip, "--device", s.device, "-o", names)
    answers = s.out / "answers.parquet"
    zsar("query-lvlm", frames, "--descriptions", descriptions, "--labels", labels,
         "-m", s.lvlm, "--device", s.device, "-o", answers)  # fmt: skip
    results = {}
    methods: tuple[tuple[str, list[str | Path]], ...] = (
        ("zeal", ["--method", "zeal", "--text", text, "--answers", answers]),
        ("clip", ["--method", "clip", "--text", names]),
    )
    for name, args in methods:
        out = s.out / f"intervals_{name}.parquet"
        zsar("localize", *args, "--embeddings", emb, "-o", out)
        metrics = s.out / f"{name}_metrics.parquet"
        zsar("score", out, "--gt", folder, "--gt-format", "thumos14", "-o", metrics, "--force")
        results[name] = metric_summary(metrics)
    rows = []
    for name, label in (("zeal", "ZEAL (LVLM start/end + CLIP)"), ("clip", "CLIP-only baseline")):
        m = results[name]["mAP"]
        for t in ("0.3", "0.5", "0.7"):
            rows.append(Row(label, f"mAP@{t}", m.get(t)))
        rows.append(Row(label, "mAP avg 0.3:0.7", results[name]["average_mAP"]))
    return Table(
        "thumos14-zeal",
        "THUMOS14 zero-shot temporal action localization (%)",
        rows,
        [
            f"CLIP {s.clip}; LVLM {s.lvlm}; frames at {s.get('fps', '1')} fps.",
            "Reference: the ZEAL paper's THUMOS14 table (not restated here).",
        ],
    )


@recipe("charades-sta")
def charades_sta(s: Settings) -> Table:
    annotation = find_file(s.root, "charades_sta_test.txt")
    gt = read_charades_sta(annotation)
    paths = locate(s.root, gt.videos, annotation)
    listed = write_list(s.out / "test.csv", [(path, None) for path in paths])
    frames, emb, text = s.out / "frames.parquet", s.out / "emb.parquet", s.out / "text.parquet"
    zsar("extract-frames", listed, "--fps", s.get("fps", "2"), "-o", frames)
    zsar("encode", frames, "-m", s.clip, "--device", s.device, "-o", emb)
    zsar("encode-text", "-l", annotation, "--templates", "none", "-m", s.clip,
         "--device", s.device, "-o", text)  # fmt: skip
    moments = s.out / "moments.parquet"
    zsar("localize", "--method", "grounding", "--embeddings", emb, "--text", text,
         "--queries", annotation, "-o", moments)  # fmt: skip
    metrics = s.out / "metrics.parquet"
    zsar("score", moments, "--gt", annotation, "-o", metrics, "--force")
    summary = metric_summary(metrics)
    recall = summary["recall"]
    rows = [
        Row("CLIP window contrast", f"R@1 IoU={t}", recall[f"R@1,IoU={t}"])
        for t in ("0.3", "0.5", "0.7")
    ]
    rows.append(Row("CLIP window contrast", "mIoU", summary["miou"]))
    return Table(
        "charades-sta",
        "Charades-STA free-text moment grounding, training-free (%)",
        rows,
        [f"CLIP {s.clip}; frames at {s.get('fps', '2')} fps; {len(gt.moments)} queries."],
    )
