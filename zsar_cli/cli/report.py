"""`zsar report PRED --gt GT -o OUTDIR`: PNG figures and one self-contained HTML page."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from zsar_cli.cli.common import cli_errors, err_console, fail


def register(app: typer.Typer) -> None:
    app.command("report")(report)


def report(
    pred: Annotated[
        str,
        typer.Argument(
            help="predictions, intervals (or ActivityNet results JSON) or frame_scores artifact."
        ),
    ],
    output: Annotated[str, typer.Option("-o", "--output", help="Output folder.")],
    gt: Annotated[
        str | None,
        typer.Option("--gt", help="Ground truth (as for zsar score; optional with true_label)."),
    ] = None,
    gt_format: Annotated[
        str | None, typer.Option("--gt-format", help="Ground-truth format (default: detected).")
    ] = None,
    tiou: Annotated[
        str | None, typer.Option(help="tIoU thresholds: comma list or start:step:stop.")
    ] = None,
    compat: Annotated[str | None, typer.Option(help="anet: ActivityNet's tie order.")] = None,
    label: Annotated[
        str | None, typer.Option(help="Anomaly: frame_scores rows of this label.")
    ] = None,
    video: Annotated[
        list[str] | None,
        typer.Option("--video", help="Draw this video's timeline (repeatable)."),
    ] = None,
    max_videos: Annotated[
        int | None, typer.Option(help="Timelines drawn when --video is not given.")
    ] = None,
) -> None:
    """Draw score timelines with ground truth shaded, confusion matrix and PR curves."""
    import dataclasses

    thresholds = None
    if tiou is not None:
        from zsar_cli.metrics import parse_tiou

        try:
            thresholds = parse_tiou(tiou)
        except ValueError as exc:
            fail(f"--tiou {tiou!r}: {exc}", 2)
    if max_videos is not None and max_videos < 0:
        fail("--max-videos must be >= 0", 2)
    with cli_errors():
        from zsar_cli.stages.report import ReportConfig, run
        from zsar_cli.stages.score import ScoreConfig

        # Options left out keep the config dataclasses' defaults.
        score_given: dict[str, Any] = {
            "gt_format": gt_format,
            "tiou": thresholds,
            "compat": compat,
            "label": label,
        }
        score_config = dataclasses.replace(
            ScoreConfig(), **{k: v for k, v in score_given.items() if v is not None}
        )
        score_config.validate()
        given: dict[str, Any] = {
            "videos": tuple(video) if video else None,
            "max_videos": max_videos,
        }
        config = dataclasses.replace(
            ReportConfig(score=score_config), **{k: v for k, v in given.items() if v is not None}
        )
        result = run(pred, gt, output, config)
    for warning in result.report.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
    err_console.print(
        f"wrote {len(result.figures)} figure(s) and {result.html}", soft_wrap=True, highlight=False
    )
