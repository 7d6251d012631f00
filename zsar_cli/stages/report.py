"""Report stage: figures and one self-contained HTML page for a scored run.

Input: the same as `zsar score` (a `predictions`, `intervals` or `frame_scores` artifact, or
ActivityNet results JSON) plus ground truth.
Output: a folder with PNG figures (per-video score timelines with ground-truth spans shaded, a
confusion matrix, precision-recall curves, mAP by tIoU, ROC) and `report.html`, which inlines
every image as base64 so the page can be mailed or attached to a ticket on its own.

matplotlib runs with the Agg backend (headless); nothing here needs a display.
"""

from __future__ import annotations

import base64
import html
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from zsar_cli.errors import CacheMismatchError, InputError
from zsar_cli.outputs import (
    check_output_path,
    make_folder,
    output_lock,
    scoped,
    write_text_atomic,
)
from zsar_cli.stages.report_config import ReportConfig as ReportConfig
from zsar_cli.stages.score import (
    AnomalyReport,
    ClassificationReport,
    GroundingReport,
    LocalizationReport,
    Report,
    evaluate,
    load_predictions,
)


@dataclass
class Figure:
    name: str  # file path relative to the output folder
    title: str


@dataclass
class ReportResult:
    report: Report
    outdir: Path
    html: Path
    figures: list[Figure]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:120] or "video"


def _save(fig: Any, outdir: Path, name: str, dpi: int) -> None:
    path = outdir / name
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    _plt().close(fig)


def _pick(candidates: list[str], config: ReportConfig) -> list[str]:
    if config.videos:
        chosen = [v for v in config.videos if v in set(candidates)]
        unknown = [v for v in config.videos if v not in set(candidates)]
        if unknown:
            raise InputError(f"--video: not among the scored videos: {', '.join(unknown)}")
        return chosen
    return sorted(candidates)[: config.max_videos]


# ---------------------------------------------------------------------------------------------
# Classification


def _confusion_figure(rep: ClassificationReport, outdir: Path, dpi: int) -> Figure:
    plt = _plt()
    cm = rep.accuracy.confusion[: rep.n_gt_classes].astype(float)
    cols = [*rep.classes, "(none)"]
    keep = cm.sum(axis=0) > 0
    keep[: rep.n_gt_classes] = True  # always show the square part
    cm, cols = cm[:, keep], [c for c, k in zip(cols, keep, strict=True) if k]
    rows = rep.classes[: rep.n_gt_classes]
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.45 * max(len(rows), len(cols)) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_xlabel("predicted (top-1)")
    ax.set_ylabel("true")
    if len(rows) <= 30:
        for i in range(len(rows)):
            for j in range(len(cols)):
                if cm[i, j]:
                    color = "white" if norm[i, j] > 0.5 else "black"
                    ax.text(j, i, int(cm[i, j]), ha="center", va="center", fontsize=7, color=color)
    fig.colorbar(im, ax=ax, fraction=0.04, label="row-normalised")
    ax.set_title(f"Confusion matrix (top-1 {rep.accuracy.top1:.3f})")
    _save(fig, outdir, "confusion.png", dpi)
    return Figure("confusion.png", "Confusion matrix")


def _classification_pr(rep: ClassificationReport, outdir: Path, config: ReportConfig) -> Figure:
    """One-vs-rest precision-recall per class from the predicted class scores."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 5))
    scores = rep.score_matrix
    low = np.nanmin(scores) - 1 if np.isfinite(scores).any() else 0.0
    support = rep.accuracy.support[: rep.n_gt_classes]
    order = np.argsort(-support, kind="stable")[: config.max_classes]
    for c in order:
        truth = rep.true_idx == c
        if not truth.any() or truth.all():
            continue
        s = np.where(np.isnan(scores[:, c]), low, scores[:, c])
        precision, recall, _ = precision_recall_curve(truth, s)
        ap = average_precision_score(truth, s)
        ax.step(recall, precision, where="post", label=f"{rep.classes[c]} (AP {ap:.2f})")
    _finish_pr(ax, "Per-class precision-recall (one-vs-rest, class scores)")
    _save(fig, outdir, "pr_curves.png", config.dpi)
    return Figure("pr_curves.png", "Precision-recall curves")


def _finish_pr(ax: Any, title: str) -> None:
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower left")


# ---------------------------------------------------------------------------------------------
# Localization


def _class_colors(n: int) -> list[Any]:
    cmap = _plt().get_cmap("tab20" if n > 10 else "tab10")
    return [cmap(i % cmap.N) for i in range(n)]


def _localization_timelines(
    rep: LocalizationReport, outdir: Path, config: ReportConfig
) -> list[Figure]:
    plt = _plt()
    gt = rep.gt
    assert gt is not None
    colors = _class_colors(len(rep.classes))
    index = {c: i for i, c in enumerate(rep.classes)}
    candidates = list(dict.fromkeys(gt.video_id)) or list(gt.videos)
    figures = []
    names = rep.video_names
    for vid in _pick(candidates, config):
        code = names.index(vid)
        sel = rep.pred["video"] == code
        fig, ax = plt.subplots(figsize=(10, 3))
        gsel = [i for i, v in enumerate(gt.video_id) if v == vid]
        for i in gsel:
            c = index.get(gt.label[i], 0)
            ax.axvspan(gt.t_start[i], gt.t_end[i], color=colors[c], alpha=0.25, lw=0)
        for s, e in gt.ambiguous.get(vid, []):
            ax.axvspan(s, e, facecolor="none", hatch="//", edgecolor="gray", lw=0)
        starts, ends = rep.pred["t_start"][sel], rep.pred["t_end"][sel]
        scores, classes = rep.pred["score"][sel], rep.pred["class"][sel]
        finite = np.isfinite(scores)
        top = float(np.nanmax(scores[finite])) if finite.any() else 1.0
        for s, e, sc, c in zip(starts, ends, scores, classes, strict=True):
            y = sc if np.isfinite(sc) else top
            ax.hlines(y, s, e, color=colors[c], lw=2.5)
        ax.set_xlabel("time (s)")
        ax.set_ylabel("proposal score")
        horizon = [*ends[np.isfinite(ends)], *gt.t_end[gsel]]
        if vid in gt.durations:
            horizon.append(gt.durations[vid])
        ax.set_xlim(0, max(horizon) if horizon else 1)
        shown = sorted({gt.label[i] for i in gsel} | {rep.classes[c] for c in set(classes)})
        handles = [
            plt.Line2D([], [], color=colors[index[c]], lw=6, alpha=0.6, label=c) for c in shown
        ]
        if handles:
            ax.legend(handles=handles, fontsize=7, loc="upper right", ncol=2)
        ax.set_title(f"{vid}: proposals (bars at their score) over ground truth (shaded)")
        name = f"timelines/{_safe(vid)}.png"
        _save(fig, outdir, name, config.dpi)
        figures.append(Figure(name, f"Timeline {vid}"))
    return figures


def _localization_curves(
    rep: LocalizationReport, outdir: Path, config: ReportConfig
) -> list[Figure]:
    plt = _plt()
    res = rep.result
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(res.thresholds, res.map, marker="o")
    ax.set_xlabel("tIoU threshold")
    ax.set_ylabel("mAP")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"mAP by tIoU (average {res.average_map:.3f})")
    ax.grid(alpha=0.3)
    _save(fig, outdir, "map_by_tiou.png", config.dpi)

    t_idx = len(res.thresholds) // 2
    fig, ax = plt.subplots(figsize=(6.5, 5))
    order = np.argsort(-res.npos, kind="stable")[: config.max_classes]
    for c in order:
        if res.npos[c] == 0:
            continue
        precision, recall = res.pr_curve(int(c), t_idx)
        if precision.size:
            ax.step(
                np.r_[0, recall],
                np.r_[precision[0], precision],
                where="post",
                label=f"{rep.classes[c]} (AP {res.ap[t_idx, c]:.2f})",
            )
    _finish_pr(ax, f"Per-class precision-recall at tIoU {res.thresholds[t_idx]:.2f}")
    _save(fig, outdir, "pr_curves.png", config.dpi)
    return [Figure("map_by_tiou.png", "mAP by tIoU"), Figure("pr_curves.png", "Precision-recall")]


# ---------------------------------------------------------------------------------------------
# Anomaly


def _spans(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
    return list(zip(edges[0::2], edges[1::2] - 1, strict=True))


def _anomaly_timelines(rep: AnomalyReport, outdir: Path, config: ReportConfig) -> list[Figure]:
    plt = _plt()
    figures = []
    for vid in _pick(list(rep.per_video), config):
        scores, labels = rep.per_video[vid]
        fig, ax = plt.subplots(figsize=(10, 2.8))
        for s, e in _spans(labels):
            ax.axvspan(s, e + 1, color="tab:red", alpha=0.2, lw=0)
        ax.plot(np.arange(len(scores)), scores, color="tab:blue", lw=1.2)
        ax.set_xlim(0, len(scores))
        ax.set_xlabel("frame")
        ax.set_ylabel("anomaly score")
        ax.set_title(f"{vid}: frame scores (line) over anomalous ground truth (shaded)")
        name = f"timelines/{_safe(vid)}.png"
        _save(fig, outdir, name, config.dpi)
        figures.append(Figure(name, f"Timeline {vid}"))
    return figures


def _anomaly_curves(rep: AnomalyReport, outdir: Path, config: ReportConfig) -> list[Figure]:
    from sklearn.metrics import precision_recall_curve, roc_curve

    plt = _plt()
    labels = np.concatenate([lab for _s, lab in rep.per_video.values()])
    scores = np.concatenate([s for s, _lab in rep.per_video.values()])
    if labels.all() or not labels.any():
        return []
    scores = np.where(np.isnan(scores), np.nanmin(scores) - 1, scores)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    fpr, tpr, _ = roc_curve(labels, scores)
    ax1.plot(fpr, tpr)
    ax1.plot([0, 1], [0, 1], ls="--", color="gray", lw=0.8)
    ax1.set_xlabel("false positive rate")
    ax1.set_ylabel("true positive rate")
    ax1.set_title(f"Frame ROC (AUC {rep.result.roc_auc:.3f})")
    precision, recall, _ = precision_recall_curve(labels, scores)
    ax2.step(recall, precision, where="post")
    _finish_pr(ax2, f"Frame precision-recall (AP {rep.result.ap:.3f})")
    _save(fig, outdir, "roc_pr.png", config.dpi)
    return [Figure("roc_pr.png", "ROC and precision-recall")]


def _grounding_recall(rep: GroundingReport, outdir: Path, config: ReportConfig) -> list[Figure]:
    """R@1 as the IoU threshold rises (the protocol's 0.3/0.5/0.7 marked)."""
    if rep.per_moment_iou.size == 0:
        return []
    plt = _plt()
    thresholds = np.linspace(0.05, 0.95, 19)
    recall = [(rep.per_moment_iou >= t).mean() for t in thresholds]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.plot(thresholds, recall, marker=".")
    for t in (0.3, 0.5, 0.7):
        ax.axvline(t, ls="--", color="gray", lw=0.8)
    ax.set_xlabel("temporal IoU threshold")
    ax.set_ylabel("R@1")
    ax.set_ylim(0, 1)
    ax.set_title(f"Moment grounding R@1 (mIoU {rep.miou:.3f})")
    _save(fig, outdir, "grounding_recall.png", config.dpi)
    return [Figure("grounding_recall.png", "R@1 by IoU threshold")]


# ---------------------------------------------------------------------------------------------
# HTML and run


def render_html(rep: Report, figures: list[Figure], outdir: Path, title: str) -> str:
    """One page; every PNG is inlined as a data: URI so the file stands alone."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px}"
        "td.v{text-align:right}img{max-width:100%;border:1px solid #eee;margin:6px 0}"
        ".warn{color:#a60}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<table><tr><th>metric</th><th>value</th></tr>",
    ]
    for name, value in rep.headline():
        parts.append(
            f"<tr><td>{html.escape(name)}</td><td class='v'>{html.escape(value)}</td></tr>"
        )
    parts.append("</table>")
    if rep.warnings:
        parts.append("<h2>Warnings</h2><ul>")
        parts.extend(f"<li class='warn'>{html.escape(w)}</li>" for w in rep.warnings)
        parts.append("</ul>")
    section = None
    for fig in figures:
        kind = "Timelines" if fig.name.startswith("timelines/") else "Figures"
        if kind != section:
            parts.append(f"<h2>{kind}</h2>")
            section = kind
        data = base64.b64encode((outdir / fig.name).read_bytes()).decode()
        parts.append(
            f"<figure><img alt='{html.escape(fig.title)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{html.escape(fig.title)}</figcaption></figure>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def build_figures(rep: Report, outdir: Path, config: ReportConfig) -> list[Figure]:
    if isinstance(rep, ClassificationReport):
        return [_confusion_figure(rep, outdir, config.dpi), _classification_pr(rep, outdir, config)]
    if isinstance(rep, GroundingReport):
        return _grounding_recall(rep, outdir, config)
    if isinstance(rep, LocalizationReport):
        return [
            *_localization_curves(rep, outdir, config),
            *_localization_timelines(rep, outdir, config),
        ]
    return [*_anomaly_curves(rep, outdir, config), *_anomaly_timelines(rep, outdir, config)]


@scoped
def run(
    pred_path: str | Path,
    gt_path: str | Path | None,
    outdir: str | Path,
    config: ReportConfig = ReportConfig(),
    force: bool = False,
) -> ReportResult:
    """Score, draw every figure into `outdir`, and write `outdir/report.html`.

    The figures are drawn into a staging folder first: a report made with other settings (an
    existing report.html with other content) is refused unless `force` before anything in
    `outdir` changes, and the report's lock keeps two runs from interleaving their figures.
    """
    config = config.validated()
    check_output_path(outdir)  # before Path(): Path("") is the current folder
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    pred = load_predictions(pred_path)
    rep, _fmt, _src = evaluate(pred, gt_path, config.score)
    page = out / "report.html"
    check_output_path(page)
    make_folder(out, out)
    with output_lock(page):
        staging = Path(tempfile.mkdtemp(prefix=".report-staging-", dir=out))
        try:
            figures = build_figures(rep, staging, config)
            html = render_html(rep, figures, staging, f"zsar report — {rep.task}: {pred.source}")
            if page.exists() and not force and page.read_text(encoding="utf-8") != html:
                raise CacheMismatchError(
                    f"{page}: a report made with other settings; use --force to replace it or "
                    "choose another -o folder"
                )
            for figure in figures:
                target = out / figure.name
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / figure.name, target)
            write_text_atomic(page, html, force=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return ReportResult(rep, out, page, figures)
