"""`zsar describe --labels FILE -o descriptions.parquet`: an LLM describes each label.

Input: a labels file (and a text model, or `--from` hand-written descriptions). Output: a
`descriptions` artifact (description, descriptors, start_question, end_question per label).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zsar_cli.cli.common import cli_errors, err_console
from zsar_cli.stages.describe import DescribeConfig

_D = DescribeConfig()


def register(app: typer.Typer) -> None:
    app.command("describe")(describe)


def describe(
    output: Annotated[
        str,
        typer.Option(
            "-o", "--output", help="Output descriptions artifact (.parquet), or - for stdout."
        ),
    ],
    labels: Annotated[
        Path | None,
        typer.Option("--labels", "-l", help="Labels file: one label per line, # comments."),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="Text model: hf:ORG/NAME or hf:/dir (a causal LM, or an LVLM's language model), "
            "or builtin:world-lvlm.",
        ),
    ] = _D.model,
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="Hand-written descriptions (JSON list/{label: record} or a descriptions Parquet) "
            "instead of a model.",
        ),
    ] = None,
    descriptors: Annotated[
        int, typer.Option(help="Visual attribute keywords per label.")
    ] = _D.descriptors,
    max_new_tokens: Annotated[int, typer.Option(help="Generation length per label.")] = (
        _D.max_new_tokens
    ),
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            help="Cache of generated descriptions per (label, model) "
            "[default: $ZSAR_CACHE_DIR/descriptions or ~/.cache/zsar/descriptions]."
        ),
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = _D.device,
    dtype: Annotated[str, typer.Option(help="auto, float32, float16 or bfloat16.")] = _D.dtype,
    trust_remote_code: Annotated[
        bool, typer.Option(help="Allow model code from the hub (off unless asked).")
    ] = _D.trust_remote_code,
) -> None:
    """Write a description, ~8 attributes and start/end questions per label (greedy, JSON)."""
    with cli_errors():
        from zsar_cli.stages import describe as stage

        config = DescribeConfig(
            model=model,
            from_file=str(from_file) if from_file is not None else None,
            descriptors=descriptors,
            max_new_tokens=max_new_tokens,
            device=device,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            cache_dir=str(cache_dir) if cache_dir is not None else None,
        ).validated()
        summary = stage.run(labels, output, config)
    how = "generated" if summary.generated else "read"
    err_console.print(
        f"{summary.labels} descriptions {how}" + (f" → {output}" if output != "-" else "")
    )
