"""`zsar select-tokens FRAMES -o tokens.parquet --question Q`: Self-Reflective Sampling.

Input: a `frames` artifact (extract-frames --segments R --frames-per-segment S), or an
`embeddings` artifact with patch tokens for `--scorer clip`. Output: a `tokens` artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zsar_cli.cli.common import (
    FORCE_OPTION,
    SHARD_OPTION,
    cli_errors,
    err_console,
    finish_batch,
    report_up_to_date,
)
from zsar_cli.stages.select_tokens_config import SelectTokensConfig, parse_layers

_D = SelectTokensConfig()

MODEL_HELP = (
    "LVLM spec: hf:ORG/NAME, hf:/path/to/dir, or builtin:world-lvlm (offline world model). "
    "Not used by --scorer clip."
)


def register(app: typer.Typer) -> None:
    app.command("select-tokens")(select_tokens)


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
    question: Annotated[
        str,
        typer.Option(help="The question tokens are selected for; with --labels it has {label}."),
    ],
    labels: Annotated[
        Path | None,
        typer.Option("--labels", "-l", help="Labels file: one selection per label ({label})."),
    ] = None,
    scorer: Annotated[
        str,
        typer.Option(
            help="attention: attention of the last input token; similarity: cosine of hidden "
            "states to the last token's; clip: CLIP patch tokens vs the question (no LVLM)."
        ),
    ] = _D.scorer,
    layers: Annotated[
        str,
        typer.Option(help="Decoder layers averaged: all, or e.g. 0,2,-1 (negative from the end)."),
    ] = "all",
    budget: Annotated[
        int | None,
        typer.Option(
            help="Tokens kept per video, split evenly across paths "
            "(default: the tokens of --baseline-frames frames)."
        ),
    ] = _D.budget,
    baseline_frames: Annotated[
        int, typer.Option(help="Default budget = the token count of this many frames.")
    ] = _D.baseline_frames,
    segments: Annotated[
        int | None,
        typer.Option(
            help="Split each video's frames into R equal paths (default: the frames' segments)."
        ),
    ] = _D.segments,
    embedding_dtype: Annotated[
        str, typer.Option(help="Storage of token embeddings: float16 or float32.")
    ] = _D.embedding_dtype,
    model: Annotated[str, typer.Option("--model", "-m", help=MODEL_HELP)] = _D.model,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = _D.device,
    dtype: Annotated[str, typer.Option(help="auto, float32, float16 or bfloat16.")] = _D.dtype,
    max_pixels: Annotated[
        int, typer.Option(help="Frames larger than this many pixels are downscaled first.")
    ] = _D.max_pixels,
    trust_remote_code: Annotated[
        bool, typer.Option(help="Allow model code from the hub (off unless asked).")
    ] = _D.trust_remote_code,
    strict: Annotated[bool, typer.Option(help="Exit 1 if any video has an error row.")] = _D.strict,
    shard: Annotated[str | None, SHARD_OPTION] = None,
    force: Annotated[bool, FORCE_OPTION] = False,
) -> None:
    """Keep the visual tokens the LVLM itself finds relevant to the question (Self-ReS)."""
    with cli_errors():
        from zsar_cli.stages import select_tokens as stage

        config = SelectTokensConfig(
            model=model,
            question=question,
            labels_file=str(labels) if labels is not None else None,
            scorer=scorer,
            layers=parse_layers(layers),
            budget=budget,
            baseline_frames=baseline_frames,
            segments=segments,
            embedding_dtype=embedding_dtype,
            max_pixels=max_pixels,
            device=device,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            strict=strict,
        ).validated()

        def report(video_id: str, error: str | None) -> None:
            if error is not None:
                err_console.print(f"[red]failed:[/] {video_id}: {error}", soft_wrap=True)

        from zsar_cli.sharding import parse_shard

        summary = stage.run(
            frames, output, config, on_video=report, shard=parse_shard(shard), force=force
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
    finish_batch(summary.videos, summary.failed, strict)
