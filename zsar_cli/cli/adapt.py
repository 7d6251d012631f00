"""`zsar adapt --support LIST -o adapter.parquet`: a training-free head from labelled clips.

Input: support videos with labels (list files `video,label`, or a frames/embeddings artifact
with a label column). Output: an `adapter` artifact for `classify --adapter` and
`localize --adapter`. Options come from AdaptConfig.
"""

from __future__ import annotations

from typing import Annotated

import typer

from zsar_cli.cli.build import config_command
from zsar_cli.cli.common import FORCE_OPTION, err_console
from zsar_cli.stages.adapt_config import AdaptConfig


def register(app: typer.Typer) -> None:
    app.command("adapt")(adapt)


@config_command
def adapt(
    support: Annotated[
        list[str],
        typer.Option(
            "--support",
            "-s",
            help="Labelled support clips: list files (.txt/.csv 'video,label'), or one "
            "frames/embeddings artifact with a label column (repeatable).",
            show_default=False,
        ),
    ],
    output: Annotated[
        str, typer.Option("-o", "--output", help="Output adapter artifact (.parquet).")
    ],
    config: AdaptConfig,
    force: Annotated[bool, FORCE_OPTION] = False,
) -> None:
    """Fit a training-free head (GDA, Tip-Adapter or class prototypes) on support clips."""
    from zsar_cli.stages import adapt as stage

    summary = stage.adapt(support, output, config.validated(), force=force)
    shots = sorted(set(summary.per_class.values()))
    per_class = str(shots[0]) if len(shots) == 1 else f"{shots[0]}-{shots[-1]}"
    line = (
        f"{summary.head.method}: {len(summary.head.classes)} classes, {summary.videos} support "
        f"clips ({per_class} per class), {summary.model} → {output}"
    )
    if summary.skipped_shots:
        line += f"; {summary.skipped_shots} clips beyond --shots {config.shots} left out"
    err_console.print(line, soft_wrap=True)
