"""`zsar describe --labels FILE -o descriptions.parquet`: an LLM describes each label.

Input: a labels file (and a text model, or `--from` hand-written descriptions). Output: a
`descriptions` artifact (description, descriptors, start_question, end_question per label).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zsar_cli.cli.build import config_command
from zsar_cli.cli.common import FORCE_OPTION, LABELS_OPTION, err_console
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
    """Write a description, ~8 attributes and start/end questions per label (greedy, JSON)."""
    from zsar_cli.stages import describe as stage

    summary = stage.run(labels, output, config.validated(), force=force)
    how = "generated" if summary.generated else "read"
    err_console.print(
        f"{summary.labels} descriptions {how}" + (f" → {output}" if output != "-" else "")
    )
