"""`zsar extract-frames INPUT… -o frames.parquet`: videos → `frames` artifact."""

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
    show_progress,
)
from zsar_cli.engines import DEFAULT_ENGINE, ENGINE_OPTION, RAY_ADDRESS_OPTION, check_engine
from zsar_cli.stages.extract_frames_config import ExtractConfig

_D = ExtractConfig()


def register(app: typer.Typer) -> None:
    app.command("extract-frames")(extract_frames)


def extract_frames(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Video files, folders (searched recursively) or list files "
            "(.txt/.csv: one path per line, or 'video,label').",
            show_default=False,
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
    num_frames: Annotated[
        int | None,
        typer.Option(
            "--num-frames",
            "-n",
            help="N frames uniformly over the duration (segment midpoints). "
            "Default when no other mode is given: 8.",
        ),
    ] = _D.num_frames,
    fps: Annotated[
        float | None,
        typer.Option(
            help="Frames per second (first frame at or after each 1/F tick; ZEAL uses 1)."
        ),
    ] = _D.fps,
    segments: Annotated[
        int | None, typer.Option(help="Dense sampling for Self-ReS: R segments ...")
    ] = _D.segments,
    frames_per_segment: Annotated[
        int | None,
        typer.Option(help="... of S frames each (R·S uniform frames, segment = i // S)."),
    ] = _D.frames_per_segment,
    all_frames: Annotated[bool, typer.Option("--all", help="Every decoded frame.")] = _D.all_frames,
    start: Annotated[
        float | None, typer.Option(help="Window start, seconds from the video's first frame.")
    ] = _D.start,
    end: Annotated[float | None, typer.Option(help="Window end, seconds.")] = _D.end,
    size: Annotated[
        int | None,
        typer.Option(
            help="Resize (inside ffmpeg) so the shorter side is "
            "SIZE pixels, keeping the aspect ratio."
        ),
    ] = _D.size,
    image_format: Annotated[str, typer.Option(help="Storage: jpeg, png or raw (RGB24).")] = (
        _D.image_format
    ),
    quality: Annotated[int, typer.Option(help="JPEG quality 1-100.")] = _D.quality,
    workers: Annotated[int, typer.Option(help="Videos decoded in parallel.")] = _D.workers,
    strict: Annotated[bool, typer.Option(help="Exit 1 if any video fails.")] = _D.strict,
    shard: Annotated[str | None, SHARD_OPTION] = None,
    force: Annotated[bool, FORCE_OPTION] = False,
    engine: Annotated[str, ENGINE_OPTION] = DEFAULT_ENGINE,
    ray_address: Annotated[str | None, RAY_ADDRESS_OPTION] = None,
) -> None:
    """Sample frames from videos with the real ffmpeg; real presentation timestamps."""
    with cli_errors():
        from zsar_cli.stages import extract_frames as stage

        config = ExtractConfig(
            num_frames=num_frames,
            fps=fps,
            segments=segments,
            frames_per_segment=frames_per_segment,
            all_frames=all_frames,
            start=start,
            end=end,
            size=size,
            image_format=image_format,
            quality=quality,
            workers=workers,
            strict=strict,
        ).validated()
        from zsar_cli.sharding import parse_shard

        part = parse_shard(shard)
        videos = stage.resolve_inputs([str(p) for p in inputs])
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
        err_console.print(f"[red]failed:[/] {video_id}: {message}", markup=True, soft_wrap=True)
    err_console.print(
        f"{summary.frames} frames from {summary.videos - summary.failed}/{summary.videos} videos"
        + (f" → {output}" if output != "-" else "")
    )
    finish_batch(summary.videos, summary.failed, strict)


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
        return stage.run(
            [], output, config, videos=videos, on_video=lambda _r: progress.advance(task)
        )
