"""`zsar score PRED [--gt GT]`: accuracy, temporal mAP@tIoU or frame ROC-AUC, by PRED's kind."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from zsar_cli.cli.build import config_command
from zsar_cli.cli.common import FORCE_OPTION, dump_json, err_console, esc, fail, out_console
from zsar_cli.stages.score_config import ScoreConfig

PRED_HELP = (
    "predictions (classification), intervals or ActivityNet results JSON (localization), or "
    "frame_scores (anomaly) artifact; - reads stdin."
)
GT_HELP = (
    "Ground truth: UCF101 testlist/folder, HMDB51 split file/folder, THUMOS14 txt/folder, "
    "ActivityNet JSON, UCF-Crime temporal lines or split list (Anomaly_Test.txt), video,label "
    "CSV or a zsar artifact. Not needed for predictions carrying true_label."
)


def register(app: typer.Typer) -> None:
    app.command("score")(score)


@config_command
def score(
    pred: Annotated[str, typer.Argument(help=PRED_HELP)],
    gt: Annotated[str | None, typer.Option("--gt", help=GT_HELP)] = None,
    *,
    config: ScoreConfig,
    output: Annotated[
        str | None, typer.Option("-o", "--output", help="Write a metrics artifact (- = stdout).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    force: Annotated[bool, FORCE_OPTION] = False,
) -> None:
    """Score predictions against ground truth; the task follows the input artifact's kind."""
    if json_out and output == "-":
        fail("--json and -o - both write to stdout; choose one", 2)
    from zsar_cli.stages.score import run

    report = run(pred, gt, output, config.validated(), force=force)
    for warning in report.warnings:
        err_console.print(f"[yellow]warning:[/] {esc(warning)}", markup=True, soft_wrap=True)
    if json_out:
        dump_json(report.summary())
        return
    print_report(report, err_console if output == "-" else out_console)


def print_report(report: Any, console: Any) -> None:
    from rich.table import Table

    table = Table(title=f"zsar score — {report.task}", show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in report.headline():
        table.add_row(name, value)
    console.print(table)
