"""`zsar localize`: temporal proposals (ZEAL or the CLIP-only baseline) and anomaly scores.

Reads `embeddings`, `text_embeddings` and `answers` artifacts; writes `intervals` (or
ActivityNet results JSON with `--format activitynet`), or `frame_scores` for `--method anomaly`.
The work happens in `zsar_cli.stages.localize`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from zsar_cli.cli.common import (
    FORCE_OPTION,
    SHARD_OPTION,
    cli_errors,
    err_console,
    finish_batch,
    report_up_to_date,
)
from zsar_cli.stages.localize_config import LocalizeConfig

# Defaults live once, on the stage's config (a module free of numpy/pyarrow imports).
D = LocalizeConfig()


def register(app: typer.Typer) -> None:
    app.command("localize")(localize)


def localize(
    method: Annotated[
        str,
        typer.Option(
            help="zeal (LVLM boundaries + CLIP actionness), clip (CLIP-only "
            "baseline) or anomaly (per-frame anomaly scores)."
        ),
    ] = D.method,
    embeddings: Annotated[
        str | None, typer.Option(help="Frame embeddings artifact (1 fps for ZEAL), or - for stdin.")
    ] = None,
    text: Annotated[
        str | None,
        typer.Option(
            help="text_embeddings of the labels (descriptions for zeal; names or "
            "templates for clip/anomaly)."
        ),
    ] = None,
    answers: Annotated[
        str | None,
        typer.Option(
            help="answers artifact: per-frame start/end p_yes (zeal) or anomaly p_yes "
            "(anomaly --source lvlm)."
        ),
    ] = None,
    gt_labels: Annotated[
        str | None,
        typer.Option(
            "--gt-labels",
            help="Use the ground-truth labels of each video instead of "
            "class filtering: ActivityNet JSON or THUMOS annotation folder.",
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            help="intervals artifact (frame_scores for anomaly); "
            "JSON with --format activitynet; - for stdout.",
        ),
    ] = None,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="parquet (an intervals artifact) or activitynet (ActivityNet results JSON).",
        ),
    ] = "parquet",
    compat: Annotated[
        str | None,
        typer.Option(
            help="zeal: reproduce the reference ZEAL code's stage 5 exactly, quirks "
            "included (see ZEAL_NOTES.md)."
        ),
    ] = None,
    top_k: Annotated[int, typer.Option(help="Labels kept by class filtering.")] = D.top_k,
    filter_frames: Annotated[
        int, typer.Option(help="Uniformly spaced frames averaged for class filtering.")
    ] = D.filter_frames,
    eps: Annotated[float, typer.Option(help="Min-max maps scores into [eps, 1-eps].")] = D.eps,
    top_p: Annotated[
        float, typer.Option(help="Fraction of frames that are start/end candidates.")
    ] = D.top_p,
    min_gap: Annotated[
        int, typer.Option(help="Minimum distance in frames between kept candidates.")
    ] = D.min_gap,
    max_len: Annotated[
        float, typer.Option(help="Longest interval as a fraction of the video's frames.")
    ] = D.max_len,
    lam: Annotated[
        float,
        typer.Option("--lambda", help="Weight of start+end p_yes vs mean CLIP actionness."),
    ] = D.lam,
    sigma: Annotated[float, typer.Option(help="Gaussian soft-NMS sigma.")] = D.sigma,
    drop: Annotated[
        float, typer.Option(help="Soft-NMS drops intervals whose decayed score is below this.")
    ] = D.drop,
    merge_iou: Annotated[
        float, typer.Option(help="Merge consecutive intervals whose IoU exceeds this.")
    ] = D.merge_iou,
    score_threshold: Annotated[
        float, typer.Option(help="Drop merged intervals scoring below this.")
    ] = D.score_threshold,
    min_mean_score: Annotated[
        float,
        typer.Option(help="Skip a filtered label whose mean start/end p_yes is below this."),
    ] = D.min_mean_score,
    boundaries: Annotated[
        str,
        typer.Option(
            help="zeal: answers (start/end p_yes as given, ZEAL) or presence (derive start/end "
            "from presence-like answers: visible now and not before/after; not part of ZEAL)."
        ),
    ] = D.boundaries,
    window: Annotated[int, typer.Option(help="clip: moving-average window in frames.")] = D.window,
    max_gap: Annotated[
        int, typer.Option(help="clip: frames this close join one segment.")
    ] = D.max_gap,
    min_frames: Annotated[
        int, typer.Option(help="clip: shortest segment in frames.")
    ] = D.min_frames,
    pseudo_labels: Annotated[
        int, typer.Option(help="clip: video pseudo-labels localized per video.")
    ] = D.pseudo_labels,
    source: Annotated[
        str,
        typer.Option(
            help="anomaly: clip (anomaly labels vs normal prompts) or lvlm "
            "(p_yes of anomaly questions in --answers)."
        ),
    ] = D.source,
    normal: Annotated[
        list[str] | None,
        typer.Option(
            "--normal",
            help="anomaly: a normal-prompt label in --text (repeatable; default Normal).",
        ),
    ] = None,
    anomaly_label: Annotated[
        list[str] | None,
        typer.Option(
            "--anomaly-label",
            help="anomaly: an anomaly label (repeatable; default every non-normal label).",
        ),
    ] = None,
    smooth: Annotated[
        int, typer.Option(help="anomaly: moving-average window in frames (1 = none).")
    ] = D.smooth,
    threshold: Annotated[
        float, typer.Option(help="anomaly: frames scoring at least this form intervals.")
    ] = D.threshold,
    intervals: Annotated[
        str | None, typer.Option(help="anomaly: also write the anomaly intervals artifact here.")
    ] = None,
    logit_scale: Annotated[
        float | None,
        typer.Option(
            help="CLIP logit scale (default: the encoder's, from the artifacts, else 100)."
        ),
    ] = None,
    strict: Annotated[bool, typer.Option(help="Exit 1 if any video fails.")] = False,
    shard: Annotated[str | None, SHARD_OPTION] = None,
    force: Annotated[bool, FORCE_OPTION] = False,
) -> None:
    """Localize actions in time (ZEAL or a CLIP-only baseline) or score frames for anomalies."""
    with cli_errors():
        from zsar_cli.sharding import parse_shard
        from zsar_cli.stages.localize import run

        config = LocalizeConfig(
            method=method,
            compat=compat,
            top_k=top_k,
            filter_frames=filter_frames,
            use_gt_labels=gt_labels is not None,
            eps=eps,
            top_p=top_p,
            min_gap=min_gap,
            max_len=max_len,
            lam=lam,
            sigma=sigma,
            drop=drop,
            merge_iou=merge_iou,
            score_threshold=score_threshold,
            min_mean_score=min_mean_score,
            boundaries=boundaries,
            window=window,
            max_gap=max_gap,
            min_frames=min_frames,
            pseudo_labels=pseudo_labels,
            source=source,
            normal_labels=tuple(normal) if normal else LocalizeConfig.normal_labels,
            anomaly_labels=tuple(anomaly_label or ()),
            smooth=smooth,
            threshold=threshold,
            logit_scale=logit_scale,
        )
        result = run(
            config,
            embeddings=embeddings,
            text=text,
            answers=answers,
            gt_labels=gt_labels,
            output=output,
            output_format=output_format,
            intervals_output=intervals,
            shard=parse_shard(shard),
            force=force,
        )
    if result.skipped:
        report_up_to_date(output)
        return
    shown = 20
    for note in result.notes[:shown]:
        err_console.print(f"[yellow]note:[/] {note}", markup=True, soft_wrap=True)
    if len(result.notes) > shown:
        err_console.print(f"[yellow]note:[/] ... and {len(result.notes) - shown} more")
    produced = (
        f"{result.frame_scores.num_rows} frame scores, " if result.frame_scores is not None else ""
    )
    n_intervals = result.intervals.num_rows if result.intervals is not None else 0
    err_console.print(
        f"localize ({method}): {result.videos} videos, {produced}{n_intervals} intervals"
        + (f" → {output}" if output and output != "-" else "")
    )
    if output is None:
        err_console.print("[yellow]warning:[/] no -o given: nothing written")
    finish_batch(result.videos, result.failed, strict)
