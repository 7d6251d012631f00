"""UCF-Crime recipes: zero-shot classification with an LVLM and Self-ReS (`ucfcrime-selfres`),
and frame-level anomaly ROC-AUC over every frame of every test video (`ucfcrime-auc`).

Input: the dataset folder as distributed: the videos in class folders (`Abuse/Abuse028_x264.mp4`,
normal videos in `*Normal_Videos*` folders), `Anomaly_Test.txt` (the test split list) and
`Temporal_Anomaly_Annotation_for_Testing_Videos.txt` (anomalous frame spans), anywhere below
--root. Output: OUT/<recipe>/ with the artifacts and the table.

Settings (`--set KEY=VALUE`): `frames` (16: linear frames of CLIP and the LVLM), `shortlist`
(all labels: the LVLM chooses among every class), `option_order` (circular), `classes` (13: the
anomaly classes only; 14 adds Normal), `normal` (the normal prompt of the AUC recipe: Normal),
`fps` (1: frames scored per second for the AUC recipe).
"""

from __future__ import annotations

from pathlib import Path

from zsar_cli.datasets import normalize_label
from zsar_cli.datasets.anomaly import read_ucf_crime, read_ucf_crime_split
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

NORMAL = "Normal"


def _test_videos(settings: Settings, with_normal: bool) -> tuple[Path, list[tuple[Path, str]]]:
    split = find_file(settings.root, "Anomaly_Test.txt")
    gt = read_ucf_crime_split(split)
    wanted = {v: lb for v, lb in gt.labels.items() if with_normal or lb != NORMAL}
    paths = locate(settings.root, list(wanted), split)
    return split, list(zip(paths, wanted.values(), strict=True))


@recipe("ucfcrime-selfres")
def ucfcrime_selfres(s: Settings) -> Table:
    """The seed's three rows: CLIP alone, the LVLM on 16 linear frames, the LVLM with Self-ReS."""
    with_normal = s.get("classes", "13") == "14"
    split, rows = _test_videos(s, with_normal)
    labels = sorted({label for _, label in rows})
    (s.out / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
    videos = write_list(s.out / "test.csv", rows)
    frames = s.get("frames", "16")
    shortlist = s.get("shortlist", str(len(labels)))
    order = s.get("option_order", "circular")
    common: list[str | Path] = [
        "--labels",
        s.out / "labels.txt",
        "-m",
        s.clip,
        "-n",
        frames,
        "--device",
        s.device,
    ]
    lvlm = ["--lvlm", s.lvlm, "--shortlist", shortlist, "--option-order", order]
    runs: dict[str, list[str | Path]] = {
        "clip": [],
        "lvlm": [*lvlm, "--frames", frames],
        "selfres": [*lvlm, "--self-res"],
    }
    exclude = [] if with_normal else ["--exclude-class", NORMAL]
    top1: dict[str, float] = {}
    for name, extra in runs.items():
        pred = s.out / f"{name}.parquet"
        zsar("classify", videos, *common, *extra, "-o", pred)
        metrics = s.out / f"{name}_metrics.parquet"
        zsar("score", pred, "--gt", split, *exclude, "-o", metrics, "--force")
        top1[name] = float(metric_summary(metrics)["top1"])
    n = len(labels)
    return Table(
        "ucfcrime-selfres",
        f"UCF-Crime zero-shot classification, {n} classes, top-1 (%)",
        [
            Row(f"CLIP ({frames} frames, template ensemble)", "top-1", top1["clip"]),
            Row(f"LVLM, {frames} linear frames", "top-1", top1["lvlm"], "≈ CLIP + 20 (seed)"),
            Row("LVLM + Self-ReS", "top-1", top1["selfres"], "44.6 (seed, VideoLLaMA2)"),
        ],
        [
            f"CLIP {s.clip}; LVLM {s.lvlm}; options {order}, shortlist {shortlist} of {n}.",
            "Reference: the Self-ReS seed paper's UCF-Crime zero-shot results (VideoLLaMA2).",
        ],
    )


@recipe("ucfcrime-auc")
def ucfcrime_auc(s: Settings) -> Table:
    """CLIP anomaly scores per sampled frame, expanded to every frame of every test video."""
    annotation = find_file(
        s.root,
        "Temporal_Anomaly_Annotation_for_Testing_Videos.txt",
        "Temporal_Anomaly_Annotation.txt",
    )
    gt = read_ucf_crime(annotation)
    paths = locate(s.root, sorted(gt.spans), annotation)
    listed = write_list(s.out / "test.csv", [(path, None) for path in paths])
    # the anomaly classes the annotation names: their prompts against the normal prompt
    classes = sorted({c for c in gt.classes.values() if c and normalize_label(c) != "normal"})
    normal = s.get("normal", NORMAL)
    (s.out / "labels.txt").write_text("\n".join([*classes, normal]) + "\n", encoding="utf-8")
    frames, emb, text = s.out / "frames.parquet", s.out / "emb.parquet", s.out / "text.parquet"
    zsar("extract-frames", listed, "--fps", s.get("fps", "1"), "-o", frames)
    zsar("encode", frames, "-m", s.clip, "--device", s.device, "-o", emb)
    zsar("encode-text", "-l", s.out / "labels.txt", "-m", s.clip, "--device", s.device, "-o", text)
    scores = s.out / "frame_scores.parquet"
    zsar(
        "localize", "--method", "anomaly", "--embeddings", emb, "--text", text,
        "--normal", normal, "-o", scores,
    )  # fmt: skip
    metrics = s.out / "metrics.parquet"
    zsar("score", scores, "--gt", annotation, "--frames", frames, "-o", metrics, "--force")
    summary = metric_summary(metrics)
    return Table(
        "ucfcrime-auc",
        "UCF-Crime frame-level anomaly detection over every frame (%)",
        [
            Row("CLIP anomaly vs normal prompts", "ROC-AUC", summary["roc_auc"], "80.28 (LAVAD)"),
            Row("CLIP anomaly vs normal prompts", "AP", summary["ap"]),
            Row("CLIP, abnormal videos only", "ROC-AUC", summary.get("roc_auc_abnormal")),
        ],
        [
            f"CLIP {s.clip}; {s.get('fps', '1')} frame(s) per second scored, every frame "
            "evaluated (frame_count from extract-frames).",
            "Reference: LAVAD (training-free, LLM-based), frame ROC-AUC on the UCF-Crime test set.",
        ],
    )
