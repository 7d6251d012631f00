"""`zsar extract-frames INPUT… -o frames.parquet`: videos → `frames` artifact."""

from __future__ import annotations

from pathlib import Path
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
    show_progress,
)
from zsar_cli.engines import ENGINE_OPTION, RAY_ADDRESS_OPTION, check_engine
from zsar_cli.stages.extract_frames_config import ExtractConfig


def register(app: typer.Typer) -> None:
    app.command("extract-frames")(extract_frames)


@config_command
def extract_frames(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Video files, folders (searched recursively), list files "
            "(.txt/.csv: one path per line, 'video,label' or 'video,label,start,end' in "
            "seconds) or Kinetics annotation CSVs (label,youtube_id,time_start,time_end,split; "
            "clips under --root).",
            show_default=False,
            readable=False,  # an unreadable video is its error row, not a usage error
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "-o",
            "--output",
            help="Output frames artifact (.parquet), or - for an Arrow IPC stream on stdout.",
        ),
    ],
    config: ExtractConfig,
    shard: Annotated[str | None, SHARD_OPTION] = None,
    force: Annotated[bool, FORCE_OPTION] = False,
    engine: Annotated[EngineName, ENGINE_OPTION] = "local",
    ray_address: Annotated[str | None, RAY_ADDRESS_OPTION] = None,
) -> None:
    """Sample frames from videos (FFmpeg in process, or the ffmpeg program); real presentation
    timestamps."""
    from zsar_cli.sharding import parse_shard
    from zsar_cli.stages import extract_frames as stage

    config = config.validated()
    part = parse_shard(shard)
    videos = stage.resolve_inputs([str(p) for p in inputs], config.root)
    if part is not None:
        videos = part.select(videos)
    if check_engine(engine, shard, ray_address) == "ray":
        from zsar_cli.engines.ray_engine import extract_with_ray

        summary = extract_with_ray(
            [], output, config, videos=videos, address=ray_address, force=force
        )
    else:
        summary = _run_with_progress(stage, videos, output, config, part, force)
    if summary.skipped:
        report_up_to_date(output)
    for video_id, message in summary.errors:
        err_console.print(
            f"[red]failed:[/] {esc(video_id)}: {esc(message)}", markup=True, soft_wrap=True
        )
    for _video_id, message in summary.warnings:
        err_console.print(f"[yellow]warning:[/] {esc(message)}", markup=True, soft_wrap=True)
    err_console.print(
        f"{summary.frames} frames from {summary.videos - summary.failed}/{summary.videos} videos"
        + (f" → {output}" if output != "-" else "")
    )
    finish_batch(summary.videos, summary.failed, config.strict)
    if config.strict and summary.cut_short:
        err_console.print(
            f"[red]error:[/] --strict: {len(summary.cut_short)} of {summary.videos} videos are "
            "cut short (see the warnings; their decoded_duration < duration)"
        )
        raise typer.Exit(1)


def _run_with_progress(stage, videos, output, config, shard, force):  # type: ignore[no-untyped-def]
    # The shard already selected `videos`; run() only needs it to name the part file.
    options = {"videos": videos, "force": force, "output_shard": shard}
    if not show_progress():
        return stage.run([], output, config, **options)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task = progress.add_task("extracting", total=len(videos))
        return stage.run([], output, config, **options, on_video=lambda _r: progress.advance(task))
