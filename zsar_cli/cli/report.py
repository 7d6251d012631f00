"""`zsar report PRED --gt GT -o OUTDIR`: PNG figures and one self-contained HTML page.

Options come from ReportConfig (and the ScoreConfig fields that matter to the figures).
"""

from __future__ import annotations

from typing import Annotated

import typer

from zsar_cli.cli.build import Fields, config_command
from zsar_cli.cli.common import FORCE_OPTION, err_console, esc
from zsar_cli.stages.report_config import ReportConfig

SCORE_FIELDS = (
    "score.gt_format",
    "score.tiou",
    "score.compat",
    "score.label",
    "score.exclude_classes",
    "score.frames",
)


def register(app: typer.Typer) -> None:
    app.command("report")(report)


@config_command
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
    *,
    config: Annotated[ReportConfig, Fields(*SCORE_FIELDS, "videos", "max_videos")],
    force: Annotated[bool, FORCE_OPTION] = False,
) -> None:
    """Draw score timelines with ground truth shaded, confusion matrix and PR curves."""
    from zsar_cli.stages.report import run

    result = run(pred, gt, output, config.validated(), force=force)
    for warning in result.report.warnings:
        err_console.print(f"[yellow]warning:[/] {esc(warning)}", markup=True, soft_wrap=True)
    err_console.print(
        f"wrote {len(result.figures)} figure(s) and {result.html}", soft_wrap=True, highlight=False
    )
