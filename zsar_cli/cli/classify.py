"""`zsar classify VIDEO|FOLDER|LIST --labels FILE`: ranked labels per video (CLIP zero-shot).

Input: videos, folders, list files, or a `frames` / `embeddings` artifact. Output: a rich table
per video on stdout, `--json`, and/or a `predictions` artifact (`-o`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from zsar_cli.cli.build import Fields, config_command
from zsar_cli.cli.common import (
    FORCE_OPTION,
    LABELS_OPTION,
    dump_json,
    err_console,
    esc,
    fail,
    finish_batch,
    out_console,
)
from zsar_cli.stages.classify_config import ClassifyConfig
from zsar_cli.stages.select_tokens_config import LVLMChoiceConfig


def register(app: typer.Typer) -> None:
    app.command("classify")(classify)


@config_command
def classify(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Videos, folders (recursive), list files (.txt/.csv 'video,label': the label is "
            "the ground truth), or one frames/embeddings artifact.",
            show_default=False,
        ),
    ],
    labels: Annotated[Path, LABELS_OPTION],
    config: ClassifyConfig,
    lvlm_config: Annotated[
        LVLMChoiceConfig,
        Fields(
            "self_res",
            "shortlist",
            "question",
            "option_order",
            "option_seed",
            "frames",
            "video_input",
            "examples_file",
            "segments",
            "frames_per_segment",
            "scorer",
            "budget",
        ),
    ],
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            help="Write a predictions artifact (.parquet, or - for an Arrow stream on stdout).",
        ),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the rankings as JSON on stdout.")
    ] = False,
    lvlm: Annotated[
        str | None,
        typer.Option(
            help="LVLM spec (hf:..., builtin:world-lvlm): CLIP shortlists labels, the LVLM "
            "chooses among them (multiple choice)."
        ),
    ] = None,
    force: Annotated[bool, FORCE_OPTION] = False,
) -> None:
    """Zero-shot classify videos against a labels file with CLIP (model loaded once)."""
    if json_out and output == "-":
        fail("--json and -o - both write to stdout; choose one", 2)
    from zsar_cli.stages import classify as stage

    config = config.validated()
    if lvlm is not None:
        lvlm_config = replace(lvlm_config, model=lvlm)
    lvlm_config = lvlm_config.validated()
    top_k = config.top_k
    show_tables = not json_out and output is None
    on_video = (lambda r: _print_table(r, top_k)) if show_tables else None
    if lvlm is not None:
        if config.adapter is not None:
            # The LVLM's predictions would not record the adapter's weight and key yet.
            fail("--adapter applies to CLIP classification; it cannot be combined with --lvlm", 2)
        from zsar_cli.stages import classify_lvlm as lvlm_stage

        summary = lvlm_stage.classify_with_lvlm(
            inputs,
            labels,
            config,
            lvlm_config,
            output=output,
            on_video=on_video,
            force=force,
        )
    else:
        if lvlm_config.self_res:
            fail("--self-res needs --lvlm SPEC", 2)
        summary = stage.classify(
            inputs, labels, config, output=output, on_video=on_video, force=force
        )
    for res in summary.results:
        if res.error is not None:
            err_console.print(
                f"[red]failed:[/] {esc(res.video_id)}: {esc(res.error)}",
                markup=True,
                soft_wrap=True,
            )
    if json_out:
        dump_json(
            {
                "model": summary.model,
                "labels": summary.labels,
                "pooling": config.pooling,
                "accuracy": summary.accuracy,
                "videos": [r.as_json(top_k) for r in summary.results],
            }
        )
    line = f"{summary.videos - summary.failed}/{summary.videos} videos classified"
    if summary.excluded:
        what = "in-context example videos" if lvlm is not None else "support videos of --adapter"
        line += f" ({summary.excluded} {what} left out)"
    if summary.accuracy is not None:
        line += f"; top-1 accuracy {summary.accuracy:.3f} against the list's labels"
    if output not in (None, "-"):
        line += f" → {output}"
    err_console.print(line)
    finish_batch(summary.videos, summary.failed, config.strict)


def _print_table(result, top_k: int) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    if result.error is not None:
        return
    title = result.video_id + (f"  (true: {result.true_label})" if result.true_label else "")
    table = Table(title=title, title_justify="left")
    table.add_column("rank", justify="right")
    table.add_column("label")
    table.add_column("probability", justify="right")
    for position, label, score in result.top(top_k):
        mark = " ✓" if result.true_label is not None and label == result.true_label else ""
        table.add_row(str(position), label + mark, f"{score:.3f}")
    out_console.print(table)
