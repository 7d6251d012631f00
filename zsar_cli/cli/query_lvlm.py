"""`zsar query-lvlm FRAMES -o answers.parquet`: yes/no, choice or free questions to an LVLM.

Input: a `frames` artifact (+ questions, labels, descriptions). Output: an `answers` artifact.
Options come from QueryConfig.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from zsar_cli.cli.build import config_command
from zsar_cli.cli.common import (
    FORCE_OPTION,
    SHARD_OPTION,
    EngineName,
    err_console,
    finish_batch,
    report_up_to_date,
)
from zsar_cli.engines import ENGINE_OPTION, RAY_ADDRESS_OPTION, engine_of
from zsar_cli.stages.query_lvlm_config import QueryConfig


def register(app: typer.Typer) -> None:
    app.command("query-lvlm")(query_lvlm)


@config_command
def query_lvlm(
    frames: Annotated[
        str, typer.Argument(help="A frames artifact (.parquet, a folder of parts, or - for stdin).")
    ],
    output: Annotated[
        str,
        typer.Option("-o", "--output", help="Output answers artifact (.parquet), or - for stdout."),
    ],
    config: QueryConfig,
    tokens: Annotated[
        Path | None,
        typer.Option(
            help="Answer from Self-ReS tokens (a tokens artifact of `zsar select-tokens` made "
            "from FRAMES): one clip-level answer per video, yesno or choice mode.",
            readable=False,  # zsar's own one-line error when it cannot be read
        ),
    ] = None,
    shard: Annotated[str | None, SHARD_OPTION] = None,
    force: Annotated[bool, FORCE_OPTION] = False,
    engine: Annotated[EngineName, ENGINE_OPTION] = "local",
    ray_address: Annotated[str | None, RAY_ADDRESS_OPTION] = None,
) -> None:
    """Ask an LVLM about every frame (or clip); confidences come from one forward pass."""
    from zsar_cli.errors import ConfigError
    from zsar_cli.sharding import parse_shard
    from zsar_cli.stages import query_lvlm as stage

    validated = config.validated()
    where = engine_of(engine, shard, ray_address)
    if tokens is not None and where.ray:
        raise ConfigError("--tokens answers with the local engine; drop --engine ray")
    if tokens is not None:
        from zsar_cli.stages import self_res

        # The raw config: model None there means the model that selected the tokens.
        summary: Any = self_res.run_from_tokens(
            frames, tokens, output, config, shard=parse_shard(shard), force=force
        )
    else:
        summary = stage.run(
            frames, output, validated, shard=parse_shard(shard), force=force, engine=where
        )
    if getattr(summary, "skipped", False):
        report_up_to_date(output)
    resumed = (
        f" ({summary.resumed_videos} resumed from a checkpoint)" if summary.resumed_videos else ""
    )
    err_console.print(
        f"{summary.rows} answer rows from {summary.videos} videos{resumed}"
        + (f" ({summary.excluded} in-context example videos left out)" if summary.excluded else "")
        + (f" → {output}" if output != "-" else "")
    )
    finish_batch(summary.videos, summary.failed, config.strict)
