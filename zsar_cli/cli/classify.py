"""`zsar classify VIDEO|FOLDER|LIST --labels FILE`: ranked labels per video (CLIP zero-shot).

Input: videos, folders, list files, or a `frames` / `embeddings` artifact. Output: a rich table
per video on stdout, `--json`, and/or a `predictions` artifact (`-o`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from zsar_cli.cli.common import (
    FORCE_OPTION,
    cli_errors,
    dump_json,
    err_console,
    fail,
    finish_batch,
    out_console,
)
from zsar_cli.cli.encode import (
    DESCRIPTIONS_HELP,
    DEVICE_HELP,
    MODEL_HELP,
    PRECISION_HELP,
    RANDOM_HELP,
    TEMPLATES_HELP,
)
from zsar_cli.stages.classify_config import ClassifyConfig
from zsar_cli.stages.encode_config import PromptConfig
from zsar_cli.stages.select_tokens_config import LVLMChoiceConfig

_D = ClassifyConfig()
_L = LVLMChoiceConfig()
_P = PromptConfig()


def register(app: typer.Typer) -> None:
    app.command("classify")(classify)


def classify(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Videos, folders (recursive), list files (.txt/.csv 'video,label': the label is "
            "the ground truth), or one frames/embeddings artifact.",
            show_default=False,
        ),
    ],
    labels: Annotated[
        Path, typer.Option("--labels", "-l", help="Labels file: one label per line, # comments.")
    ],
    model: Annotated[str | None, typer.Option("--model", "-m", help=MODEL_HELP)] = _D.model,
    num_frames: Annotated[
        int, typer.Option("--num-frames", "-n", help="Frames sampled uniformly per video.")
    ] = _D.num_frames,
    size: Annotated[
        int | None,
        typer.Option(help="Decode frames with the shorter side resized to SIZE (faster)."),
    ] = _D.size,
    pooling: Annotated[
        str,
        typer.Option(
            help="mean-embedding (mean of frame embeddings, renormalised) or mean-prob (mean "
            "of per-frame probabilities)."
        ),
    ] = _D.pooling,
    top_k: Annotated[
        int, typer.Option(help="Labels shown per video (the artifact keeps every label).")
    ] = _D.top_k,
    templates: Annotated[str, typer.Option(help=TEMPLATES_HELP)] = _P.templates,
    descriptions: Annotated[Path | None, typer.Option(help=DESCRIPTIONS_HELP)] = None,
    random_descriptors: Annotated[
        int, typer.Option(metavar="K", help=RANDOM_HELP)
    ] = _P.random_descriptors,
    seed: Annotated[int, typer.Option(help="Seed of --random-descriptors.")] = _P.seed,
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
    device: Annotated[str, typer.Option(help=DEVICE_HELP)] = _D.device,
    precision: Annotated[str, typer.Option(help=PRECISION_HELP)] = _D.precision,
    batch_size: Annotated[
        int, typer.Option(help="Images per model forward (spanning videos).")
    ] = _D.batch_size,
    workers: Annotated[int, typer.Option(help="Videos decoded in parallel.")] = _D.workers,
    strict: Annotated[bool, typer.Option(help="Exit 1 if any video fails.")] = _D.strict,
    lvlm: Annotated[
        str | None,
        typer.Option(
            help="LVLM spec (hf:..., builtin:world-lvlm): CLIP shortlists labels, the LVLM "
            "chooses among them (multiple choice)."
        ),
    ] = None,
    self_res: Annotated[
        bool,
        typer.Option(
            help="With --lvlm: answer from Self-ReS tokens of densely sampled segments instead "
            "of linearly sampled frames."
        ),
    ] = _L.self_res,
    shortlist: Annotated[
        int, typer.Option(help="With --lvlm: CLIP's top labels offered to the LVLM.")
    ] = _L.shortlist,
    force: Annotated[bool, FORCE_OPTION] = False,
) -> None:
    """Zero-shot classify videos against a labels file with CLIP (model loaded once)."""
    if json_out and output == "-":
        fail("--json and -o - both write to stdout; choose one", 2)
    with cli_errors():
        from zsar_cli.stages import classify as stage

        config = ClassifyConfig(
            model=model,
            num_frames=num_frames,
            size=size,
            pooling=pooling,
            top_k=top_k,
            prompts=PromptConfig(
                templates=templates,
                descriptions=str(descriptions) if descriptions is not None else None,
                random_descriptors=random_descriptors,
                seed=seed,
            ),
            device=device,
            precision=precision,
            batch_size=batch_size,
            workers=workers,
            strict=strict,
        ).validated()
        show_tables = not json_out and output is None
        on_video = (lambda r: _print_table(r, top_k)) if show_tables else None
        if lvlm is not None:
            from zsar_cli.stages import classify_lvlm as lvlm_stage

            lvlm_config = LVLMChoiceConfig(model=lvlm, self_res=self_res, shortlist=shortlist)
            summary = lvlm_stage.classify_with_lvlm(
                inputs, labels, config, lvlm_config, output=output, on_video=on_video, force=force
            )
        else:
            if self_res:
                fail("--self-res needs --lvlm SPEC", 2)
            summary = stage.classify(
                inputs, labels, config, output=output, on_video=on_video, force=force
            )
    for res in summary.results:
        if res.error is not None:
            err_console.print(f"[red]failed:[/] {res.video_id}: {res.error}", soft_wrap=True)
    if json_out:
        dump_json(
            {
                "model": summary.model,
                "labels": summary.labels,
                "pooling": pooling,
                "accuracy": summary.accuracy,
                "videos": [r.as_json(top_k) for r in summary.results],
            }
        )
    line = f"{summary.videos - summary.failed}/{summary.videos} videos classified"
    if summary.accuracy is not None:
        line += f"; top-1 accuracy {summary.accuracy:.3f} against the list's labels"
    if output not in (None, "-"):
        line += f" → {output}"
    err_console.print(line)
    finish_batch(summary.videos, summary.failed, strict)


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
