"""`zsar query-lvlm FRAMES -o answers.parquet`: yes/no, choice or free questions to an LVLM.

Input: a `frames` artifact (+ questions, labels, descriptions). Output: an `answers` artifact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from zsar_cli.cli.common import (
    FORCE_OPTION,
    SHARD_OPTION,
    cli_errors,
    err_console,
    finish_batch,
    report_up_to_date,
)
from zsar_cli.stages.query_lvlm_config import QueryConfig

_D = QueryConfig()

MODEL_HELP = (
    "LVLM spec: hf:ORG/NAME (Hugging Face hub or cache), hf:/path/to/dir (a saved model with its "
    "processor), or builtin:world-lvlm (offline world model). Default: "
    "hf:HuggingFaceTB/SmolVLM2-256M-Video-Instruct; with --tokens, the model that selected them."
)


def register(app: typer.Typer) -> None:
    app.command("query-lvlm")(query_lvlm)


def query_lvlm(
    frames: Annotated[
        str, typer.Argument(help="A frames artifact (.parquet, a folder of parts, or - for stdin).")
    ],
    output: Annotated[
        str,
        typer.Option("-o", "--output", help="Output answers artifact (.parquet), or - for stdout."),
    ],
    question: Annotated[
        str | None,
        typer.Option(help="Question to ask; with --labels it must contain {label}."),
    ] = _D.question,
    questions: Annotated[
        Path | None,
        typer.Option(help="File of questions (one per line, # comments), templates with {label}."),
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels", "-l", help="Labels file: fills {label}; the options of --mode choice."
        ),
    ] = None,
    descriptions: Annotated[
        Path | None,
        typer.Option(
            help="Descriptions JSON/Parquet: asks each label's start and end question inside "
            "--frame-prompt."
        ),
    ] = None,
    level: Annotated[
        str,
        typer.Option(help="frame: one prompt per frame; clip: a segment's frames in one prompt."),
    ] = _D.level,
    mode: Annotated[
        str,
        typer.Option(
            help="yesno: p_yes from next-token logits; choice: lettered labels as options; "
            "generate: greedy text."
        ),
    ] = _D.mode,
    frame_prompt: Annotated[
        str, typer.Option(help="Prompt around start/end questions ({label}, {question}).")
    ] = _D.frame_prompt,
    query_kind: Annotated[
        str | None,
        typer.Option(
            help="query_kind of --question rows (default: class with labels, else anomaly)."
        ),
    ] = _D.query_kind,
    model: Annotated[str | None, typer.Option("--model", "-m", help=MODEL_HELP)] = _D.model,
    device: Annotated[str, typer.Option(help="cpu, cuda, cuda:N or auto.")] = _D.device,
    dtype: Annotated[str, typer.Option(help="auto, float32, float16 or bfloat16.")] = _D.dtype,
    batch_size: Annotated[int, typer.Option(help="Prompts per forward pass.")] = _D.batch_size,
    max_frames: Annotated[
        int, typer.Option(help="At most this many frames per clip prompt (uniformly kept).")
    ] = _D.max_frames,
    max_pixels: Annotated[
        int, typer.Option(help="Frames larger than this many pixels are downscaled first.")
    ] = _D.max_pixels,
    max_new_tokens: Annotated[
        int, typer.Option(help="Generation length for --mode generate.")
    ] = _D.max_new_tokens,
    trust_remote_code: Annotated[
        bool, typer.Option(help="Allow model code from the hub (off unless asked).")
    ] = _D.trust_remote_code,
    strict: Annotated[bool, typer.Option(help="Exit 1 if any video has an error row.")] = _D.strict,
    tokens: Annotated[
        Path | None,
        typer.Option(
            help="Answer from Self-ReS tokens (a tokens artifact of `zsar select-tokens` made "
            "from FRAMES): one clip-level answer per video, yesno or choice mode."
        ),
    ] = None,
    shard: Annotated[str | None, SHARD_OPTION] = None,
    force: Annotated[bool, FORCE_OPTION] = False,
) -> None:
    """Ask an LVLM about every frame (or clip); confidences come from one forward pass."""
    with cli_errors():
        from zsar_cli.sharding import parse_shard
        from zsar_cli.stages import query_lvlm as stage

        raw = QueryConfig(
            model=model,
            mode=mode,
            level=level,
            question=question,
            questions_file=str(questions) if questions is not None else None,
            labels_file=str(labels) if labels is not None else None,
            descriptions_file=str(descriptions) if descriptions is not None else None,
            frame_prompt=frame_prompt,
            query_kind=query_kind,
            max_frames=max_frames,
            max_pixels=max_pixels,
            max_new_tokens=max_new_tokens,
            device=device,
            dtype=dtype,
            batch_size=batch_size,
            trust_remote_code=trust_remote_code,
            strict=strict,
        )
        config = raw.validated()
        if tokens is not None:
            from zsar_cli.stages import self_res

            summary: Any = self_res.run_from_tokens(
                frames, tokens, output, raw, shard=parse_shard(shard), force=force
            )
        else:
            summary = stage.run(frames, output, config, shard=parse_shard(shard), force=force)
    if getattr(summary, "skipped", False):
        report_up_to_date(output)
    resumed = (
        f" ({summary.resumed_videos} resumed from a checkpoint)" if summary.resumed_videos else ""
    )
    err_console.print(
        f"{summary.rows} answer rows from {summary.videos} videos{resumed}"
        + (f" → {output}" if output != "-" else "")
    )
    finish_batch(summary.videos, summary.failed, strict)
