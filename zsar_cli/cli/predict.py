"""`zsar predict ANSWERS -o predictions.parquet`: choice answers → ranked predictions.

Input: an `answers` artifact of `query-lvlm --mode choice` (+ `--shortlist-from` the CLIP
predictions its options came from). Output: a `predictions` artifact (`zsar score` reads it).
"""

from __future__ import annotations

from typing import Annotated

import typer

from zsar_cli.cli.build import config_command
from zsar_cli.cli.common import FORCE_OPTION, err_console, finish_batch
from zsar_cli.stages.predict_config import PredictConfig


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)


@config_command
def predict(
    answers: Annotated[
        str, typer.Argument(help="An answers artifact of query-lvlm --mode choice (.parquet).")
    ],
    output: Annotated[
        str,
        typer.Option("-o", "--output", help="Output predictions artifact (.parquet), or -."),
    ],
    config: PredictConfig,
    force: Annotated[bool, FORCE_OPTION] = False,
) -> None:
    """Rank each video's labels by the LVLM's option probabilities (mean over orderings)."""
    from zsar_cli.stages import predict as stage

    summary = stage.run(answers, output, config, force=force)
    err_console.print(
        f"{summary.videos - summary.failed}/{summary.videos} videos ranked"
        + (f" → {output}" if output != "-" else "")
    )
    finish_batch(summary.videos, summary.failed, False)
