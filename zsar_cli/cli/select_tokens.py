"""`zsar select-tokens FRAMES -o tokens.parquet --question Q`: Self-Reflective Sampling.

Input: a `frames` artifact (extract-frames --segments R --frames-per-segment S), or an
`embeddings` artifact with patch tokens for `--scorer clip`. Output: a `tokens` artifact.
"""

from __future__ import annotations

from typing import Annotated

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
from zsar_cli.stages.select_tokens_config import SelectTokensConfig


def register(app: typer.Typer) -> None:
    app.command("select-tokens")(select_tokens)


@config_command
def select_tokens(
    frames: Annotated[
        str,
        typer.Argument(
            help="A frames artifact sampled in segments (an embeddings artifact with patch "
            "tokens for --scorer clip), or - for stdin."
        ),
    ],
    output: Annotated[
        str, typer.Option("-o", "--output", help="Output tokens artifact (.parquet), or -.")
    ],
    config: SelectTokensConfig,
    shard: Annotated[str | None, SHARD_OPTION] = None,
    force: Annotated[bool, FORCE_OPTION] = False,
    engine: Annotated[EngineName, ENGINE_OPTION] = "local",
    ray_address: Annotated[str | None, RAY_ADDRESS_OPTION] = None,
) -> None:
    """Keep the visual tokens the LVLM itself finds relevant to the question (Self-ReS)."""
    from zsar_cli.sharding import parse_shard
    from zsar_cli.stages import select_tokens as stage

    def report(video_id: str, error: str | None) -> None:
        if error is not None:
            err_console.print(
                f"[red]failed:[/] {esc(video_id)}: {esc(error)}", markup=True, soft_wrap=True
            )

    summary = stage.run(
        frames,
        output,
        config.validated(),
        on_video=report,
        shard=parse_shard(shard),
        force=force,
        engine=engine_of(engine, shard, ray_address),
    )
    if summary.skipped:
        report_up_to_date(output)
    resumed = (
        f" ({summary.resumed_videos} resumed from a checkpoint)" if summary.resumed_videos else ""
    )
    err_console.print(
        f"{summary.rows} token rows from {summary.videos} videos{resumed}"
        + (f" → {output}" if output != "-" else "")
    )
    finish_batch(summary.videos, summary.failed, config.strict)
