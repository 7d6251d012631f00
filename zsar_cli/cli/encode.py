"""`zsar encode FRAMES -o embeddings.parquet` and `zsar encode-text --labels FILE -o text.parquet`.

`encode`: `frames` artifact → `embeddings` artifact. `encode-text`: labels (+ templates /
descriptions) → `text_embeddings` artifact.
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
from zsar_cli.engines import DEFAULT_ENGINE, ENGINE_OPTION, RAY_ADDRESS_OPTION, check_engine
from zsar_cli.stages.encode_config import EncodeConfig, PromptConfig, TextEncodeConfig

_D = EncodeConfig()
_T = TextEncodeConfig()
_P = PromptConfig()

MODEL_HELP = (
    "Encoder spec: openclip:ARCH/PRETRAINED_TAG, openclip:hf-hub:ORG/REPO, "
    "openclip:ARCH@/path/model.safetensors, or builtin:world-clip (offline)."
)
DEVICE_HELP = "cpu, cuda, cuda:N or auto (cuda when available)."
PRECISION_HELP = "fp32, fp16 or bf16 model weights."
TEMPLATES_HELP = (
    "Prompt templates: none (bare label), video (built-in ensemble of 8), or a file with one "
    "template per line containing {}."
)
DESCRIPTIONS_HELP = (
    "Descriptions JSON/Parquet: each label is scored by the mean similarity over its "
    "'{label}, which has {descriptor}' prompts."
)
RANDOM_HELP = "Control: K random-word descriptors per label instead of real ones (fixed --seed)."


def register(app: typer.Typer) -> None:
    app.command("encode")(encode)
    app.command("encode-text")(encode_text)


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
    model: Annotated[str, typer.Option("--model", "-m", help=MODEL_HELP)] = _D.model,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = _D.device,
    precision: Annotated[str, typer.Option(help=PRECISION_HELP)] = _D.precision,
    batch_size: Annotated[int, typer.Option(help="Images per model forward.")] = _D.batch_size,
    dtype: Annotated[
        str, typer.Option(help="Storage of embeddings: float16 or float32.")
    ] = _D.dtype,
    patch_tokens: Annotated[
        bool,
        typer.Option(
            help="Also store each frame's patch tokens, projected into the joint space "
            "(column patch_tokens; grid in the metadata)."
        ),
    ] = _D.patch_tokens,
    strict: Annotated[bool, typer.Option(help="Exit 1 if any video has an error row.")] = (
        _D.strict
    ),
    shard: Annotated[str | None, SHARD_OPTION] = None,
    force: Annotated[bool, FORCE_OPTION] = False,
    engine: Annotated[str, ENGINE_OPTION] = DEFAULT_ENGINE,
    ray_address: Annotated[str | None, RAY_ADDRESS_OPTION] = None,
) -> None:
    """Embed every frame of a frames artifact with a CLIP image encoder."""
    with cli_errors():
        from zsar_cli.sharding import parse_shard
        from zsar_cli.stages import encode as stage

        config = EncodeConfig(
            model=model,
            device=device,
            precision=precision,
            batch_size=batch_size,
            dtype=dtype,
            patch_tokens=patch_tokens,
            strict=strict,
        ).validated()
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
    finish_batch(summary.videos, summary.failed, strict)


def encode_text(
    labels: Annotated[
        Path, typer.Option("--labels", "-l", help="Labels file: one label per line, # comments.")
    ],
    output: Annotated[
        str,
        typer.Option(
            "-o", "--output", help="Output text_embeddings artifact (.parquet), or - for stdout."
        ),
    ],
    model: Annotated[str, typer.Option("--model", "-m", help=MODEL_HELP)] = _T.model,
    templates: Annotated[str, typer.Option(help=TEMPLATES_HELP)] = _P.templates,
    descriptions: Annotated[Path | None, typer.Option(help=DESCRIPTIONS_HELP)] = None,
    random_descriptors: Annotated[
        int, typer.Option(metavar="K", help=RANDOM_HELP)
    ] = _P.random_descriptors,
    seed: Annotated[int, typer.Option(help="Seed of --random-descriptors.")] = _P.seed,
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = _T.device,
    precision: Annotated[str, typer.Option(help=PRECISION_HELP)] = _T.precision,
    batch_size: Annotated[int, typer.Option(help="Prompts per model forward.")] = _T.batch_size,
) -> None:
    """Embed label prompts (names, template ensemble, or descriptors) with a CLIP text encoder."""
    with cli_errors():
        from zsar_cli.stages import encode as stage

        config = TextEncodeConfig(
            model=model,
            device=device,
            precision=precision,
            batch_size=batch_size,
            prompts=PromptConfig(
                templates=templates,
                descriptions=str(descriptions) if descriptions is not None else None,
                random_descriptors=random_descriptors,
                seed=seed,
            ).validated(),
        )
        summary = stage.run_text(labels, output, config)
    err_console.print(
        f"{summary.prompts} prompts for {summary.labels} labels"
        + (f" → {output}" if output != "-" else "")
    )
