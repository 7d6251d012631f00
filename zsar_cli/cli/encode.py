"""`zsar encode FRAMES -o embeddings.parquet` and `zsar encode-text --labels FILE -o text.parquet`.

`encode`: `frames` artifact → `embeddings` artifact. `encode-text`: labels (+ templates /
descriptions) → `text_embeddings` artifact. Options come from EncodeConfig / TextEncodeConfig.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zsar_cli.cli.build import config_command
from zsar_cli.cli.common import (
    FORCE_OPTION,
    LABELS_OPTION,
    SHARD_OPTION,
    EngineName,
    err_console,
    finish_batch,
    report_up_to_date,
)
from zsar_cli.engines import ENGINE_OPTION, RAY_ADDRESS_OPTION, check_engine
from zsar_cli.stages.encode_config import EncodeConfig, TextEncodeConfig


def register(app: typer.Typer) -> None:
    app.command("encode")(encode)
    app.command("encode-text")(encode_text)


@config_command
def encode(
    frames: Annotated[
        str, typer.Argument(help="A frames artifact (.parquet, a folder of parts, or - for stdin).")
    ],
    output: Annotated[
        str,
        typer.Option(
            "-o", "--output", help="Output embeddings artifact (.parquet), or - for stdout."
        ),
    ],
    config: EncodeConfig,
    shard: Annotated[str | None, SHARD_OPTION] = None,
    force: Annotated[bool, FORCE_OPTION] = False,
    engine: Annotated[EngineName, ENGINE_OPTION] = "local",
    ray_address: Annotated[str | None, RAY_ADDRESS_OPTION] = None,
) -> None:
    """Embed every frame of a frames artifact with a CLIP image encoder."""
    from zsar_cli.sharding import parse_shard
    from zsar_cli.stages import encode as stage

    config = config.validated()
    if check_engine(engine, shard, ray_address) == "ray":
        from zsar_cli.engines.ray_engine import encode_with_ray

        summary = encode_with_ray(frames, output, config, address=ray_address, force=force)
    else:
        summary = stage.run(frames, output, config, shard=parse_shard(shard), force=force)
    if summary.skipped:
        report_up_to_date(output)
    err_console.print(
        f"{summary.frames} frame rows from {summary.videos} videos"
        + (f" → {output}" if output != "-" else "")
    )
    finish_batch(summary.videos, summary.failed, config.strict)


@config_command
def encode_text(
    labels: Annotated[Path, LABELS_OPTION],
    output: Annotated[
        str,
        typer.Option(
            "-o", "--output", help="Output text_embeddings artifact (.parquet), or - for stdout."
        ),
    ],
    config: TextEncodeConfig,
    force: Annotated[bool, FORCE_OPTION] = False,
) -> None:
    """Embed label prompts (names, template ensemble, or descriptors) with a CLIP text encoder."""
    from zsar_cli.stages import encode as stage

    summary = stage.run_text(labels, output, config.validated(), force=force)
    err_console.print(
        f"{summary.prompts} prompts for {summary.labels} labels"
        + (f" → {output}" if output != "-" else "")
    )
