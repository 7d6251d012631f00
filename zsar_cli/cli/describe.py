"""`zsar describe --labels FILE -o descriptions.parquet`: an LLM describes each label.

Input: a labels file (and a text model, or `--from` hand-written descriptions). Output: a
`descriptions` artifact (description, descriptors, start_question, end_question per label, with
what the quality guards did in status/attempts/notes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from zsar_cli.cli.build import config_command
from zsar_cli.cli.common import FORCE_OPTION, LABELS_OPTION, err_console, show_progress
from zsar_cli.stages.describe import DescribeConfig


def register(app: typer.Typer) -> None:
    app.command("describe")(describe)


@config_command
def describe(
    output: Annotated[
        str,
        typer.Option(
            "-o", "--output", help="Output descriptions artifact (.parquet), or - for stdout."
        ),
    ],
    config: DescribeConfig,
    labels: Annotated[Path | None, LABELS_OPTION] = None,
    force: Annotated[bool, FORCE_OPTION] = False,
) -> None:
    """Write a description, ~8 attributes and start/end questions per label (greedy, decoded
    under the record's JSON schema, so every answer is a valid record)."""
    from zsar_cli.stages import describe as stage

    cfg = config.validated()
    summary = _run_with_progress(stage, labels, output, cfg, force)
    target = f" → {output}" if output != "-" else ""
    result = summary.result
    if result is None:
        err_console.print(f"{summary.labels} descriptions read{target}")
        return
    line = f"{summary.labels} descriptions{target}: {result.cached} from cache"
    if result.generated:
        rate = result.generated / max(result.seconds, 1e-9)
        line += (
            f", {result.generated} generated in {result.seconds:.1f} s ({rate:.2f} labels/s); "
            f"valid on the first try {result.first_try_valid}/{result.generated}, "
            f"regenerated {result.regenerated}, repaired {result.repaired}"
        )
    err_console.print(line)


def _run_with_progress(stage: Any, labels: Path | None, output: str, cfg: Any, force: bool) -> Any:
    if not show_progress():
        return stage.run(labels, output, cfg, force=force)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task("describing", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        return stage.run(labels, output, cfg, force=force, on_batch=advance)
