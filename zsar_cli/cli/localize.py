"""`zsar localize`: temporal proposals (ZEAL or the CLIP-only baseline), anomaly scores, and
moments of free-text queries (`--method grounding --queries FILE`).

Reads `embeddings`, `text_embeddings` and `answers` artifacts; writes `intervals` (or
ActivityNet results JSON with `--format activitynet`), or `frame_scores` for `--method anomaly`.
The work happens in `zsar_cli.stages.localize`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Literal

import typer

from zsar_cli.cli.build import config_command
from zsar_cli.cli.common import (
    FORCE_OPTION,
    SHARD_OPTION,
    EngineName,
    err_console,
    esc,
    finish_batch,
    report_up_to_date,
)
from zsar_cli.engines import ENGINE_OPTION, RAY_ADDRESS_OPTION, engine_of
from zsar_cli.options import STRICT_HELP
from zsar_cli.stages.localize_config import LocalizeConfig


def register(app: typer.Typer) -> None:
    app.command("localize")(localize)


@config_command
def localize(
    config: LocalizeConfig,
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
    queries: Annotated[
        str | None,
        typer.Option(
            help="grounding: free-text queries, one per line: a sentence (asked of every video), "
            "VIDEO##SENTENCE, or Charades-STA lines VIDEO START END##SENTENCE (spans not read)."
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
        Literal["parquet", "activitynet"],
        typer.Option(
            "--format",
            help="parquet (an intervals artifact) or activitynet (ActivityNet results JSON).",
        ),
    ] = "parquet",
    intervals: Annotated[
        str | None, typer.Option(help="anomaly: also write the anomaly intervals artifact here.")
    ] = None,
    strict: Annotated[bool, typer.Option(help=STRICT_HELP)] = False,
    shard: Annotated[str | None, SHARD_OPTION] = None,
    force: Annotated[bool, FORCE_OPTION] = False,
    engine: Annotated[EngineName, ENGINE_OPTION] = "local",
    ray_address: Annotated[str | None, RAY_ADDRESS_OPTION] = None,
) -> None:
    """Localize actions in time (ZEAL or a CLIP-only baseline), score frames for anomalies, or
    ground free-text queries (moments per sentence)."""
    from zsar_cli.sharding import parse_shard
    from zsar_cli.stages.localize import run

    result = run(
        replace(config, use_gt_labels=gt_labels is not None),
        embeddings=embeddings,
        text=text,
        answers=answers,
        gt_labels=gt_labels,
        queries=queries,
        output=output,
        output_format=output_format,
        intervals_output=intervals,
        shard=parse_shard(shard),
        force=force,
        engine=engine_of(engine, shard, ray_address),
    )
    if result.skipped:
        report_up_to_date(output)
        return
    shown = 20
    for note in result.notes[:shown]:
        err_console.print(f"[yellow]note:[/] {esc(note)}", markup=True, soft_wrap=True)
    if len(result.notes) > shown:
        err_console.print(f"[yellow]note:[/] ... and {len(result.notes) - shown} more", markup=True)
    produced = (
        f"{result.frame_scores.num_rows} frame scores, " if result.frame_scores is not None else ""
    )
    n_intervals = result.intervals.num_rows if result.intervals is not None else 0
    err_console.print(
        f"localize ({config.method}): {result.videos} videos, {produced}{n_intervals} intervals"
        + (f" → {output}" if output and output != "-" else "")
    )
    if output is None:
        err_console.print("[yellow]warning:[/] no -o given: nothing written", markup=True)
    finish_batch(result.videos, result.failed, strict)
