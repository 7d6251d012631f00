"""`zsar score PRED [--gt GT]`: accuracy, temporal mAP@tIoU or frame ROC-AUC, by PRED's kind."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from zsar_cli.cli.common import cli_errors, dump_json, err_console, fail, out_console


def register(app: typer.Typer) -> None:
    app.command("score")(score)


def score(
    pred: Annotated[
        str,
        typer.Argument(
            help="predictions (classification), intervals or ActivityNet results JSON "
            "(localization), or frame_scores (anomaly) artifact; - reads stdin."
        ),
    ],
    gt: Annotated[
        str | None,
        typer.Option(
            "--gt",
            help="Ground truth: UCF101 testlist/folder, HMDB51 split file/folder, THUMOS14 "
            "txt/folder, ActivityNet JSON, UCF-Crime lines, video,label CSV or a zsar artifact. "
            "Not needed for predictions carrying true_label.",
        ),
    ] = None,
    gt_format: Annotated[
        str | None,
        typer.Option(
            "--gt-format",
            help="ucf101|hmdb51|thumos14|activitynet|ucf_crime|list|artifact (default: detected).",
        ),
    ] = None,
    tiou: Annotated[
        str | None,
        typer.Option(
            help="tIoU thresholds: comma list or start:step:stop (default by GT format: THUMOS14 "
            "0.3:0.1:0.7, ActivityNet 0.5:0.05:0.95).",
        ),
    ] = None,
    preset: Annotated[
        str | None, typer.Option(help="Threshold preset: thumos or anet (overridden by --tiou).")
    ] = None,
    compat: Annotated[
        str | None,
        typer.Option(
            help="anet: rank tied scores as ActivityNet's eval_detection.py does (numpy's "
            "unstable argsort) and keep its 0/0 tIoU arithmetic. Default: stable sort.",
        ),
    ] = None,
    subset_classes: Annotated[
        int | None,
        typer.Option(help="Also report mAP over K random classes per split (zero-shot protocol)."),
    ] = None,
    subset_splits: Annotated[
        int | None,
        typer.Option(help="Number of random class splits for --subset-classes."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the class splits.")] = None,
    split: Annotated[
        int | None, typer.Option(help="UCF101 testlist / HMDB51 split number for folders.")
    ] = None,
    subset: Annotated[
        str | None,
        typer.Option(help="ActivityNet subset to keep, e.g. validation (default: all videos)."),
    ] = None,
    label: Annotated[
        str | None,
        typer.Option(help="Anomaly: use frame_scores rows of this label (default: unlabelled)."),
    ] = None,
    fill: Annotated[
        str | None,
        typer.Option(
            help="Anomaly: score of unsampled frames from the nearest or previous scored frame."
        ),
    ] = None,
    ambiguous: Annotated[
        str | None,
        typer.Option(
            help="THUMOS14 Ambiguous spans: exclude false positives overlapping them (devkit) "
            "or ignore the spans."
        ),
    ] = None,
    output: Annotated[
        str | None, typer.Option("-o", "--output", help="Write a metrics artifact (- = stdout).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Score predictions against ground truth; the task follows the input artifact's kind."""
    import dataclasses

    thresholds = None
    if tiou is not None:
        from zsar_cli.metrics import parse_tiou

        try:
            thresholds = parse_tiou(tiou)
        except ValueError as exc:
            fail(f"--tiou {tiou!r}: {exc}", 2)
    if json_out and output == "-":
        fail("--json and -o - both write to stdout; choose one", 2)
    given: dict[str, Any] = {
        "gt_format": gt_format,
        "tiou": thresholds,
        "preset": preset,
        "compat": compat,
        "subset_classes": subset_classes,
        "subset_splits": subset_splits,
        "seed": seed,
        "split": split,
        "subset": subset,
        "label": label,
        "fill": fill,
        "ambiguous": ambiguous,
    }
    with cli_errors():
        from zsar_cli.stages.score import ScoreConfig, run

        # Options left out keep ScoreConfig's defaults (each default lives there only).
        config = dataclasses.replace(
            ScoreConfig(), **{k: v for k, v in given.items() if v is not None}
        )
        config.validate()
        report = run(pred, gt, output, config)
    for warning in report.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", soft_wrap=True)
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
