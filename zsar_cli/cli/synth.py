"""`zsar synth OUTDIR`: generate synthetic-world videos with exact ground truth.

Input: options only (a seed fixes everything). Output: OUTDIR/labels.txt, descriptions.json,
world.json, trimmed/ (videos + list.csv), untrimmed/ (videos + list.csv + activitynet.json +
thumos/*_test.txt), anomaly/ (videos + list.csv + temporal_annotation.txt). No Parquet artifact.
With `--layout NAME` the videos and annotation files are those of a real dataset instead
(`zsar_cli.synthetic.layouts`). The work is done by `zsar_cli.synthetic.generate_world` /
`generate_layout`; this module only parses options.
"""

from __future__ import annotations

import re
import time
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any

import typer

from zsar_cli.cli.common import dump_json, err_console, fail, show_progress


def register(app: typer.Typer) -> None:
    app.command("synth")(synth)


def _defaults() -> dict[str, Any]:
    # Each default lives once, in SynthConfig (zsar_cli.synthetic imports numpy lazily, so
    # reading them here keeps `zsar --help` fast).
    from zsar_cli import synthetic

    return {f.name: f.default for f in fields(synthetic.SynthConfig)}


_D = _defaults()


def _span(value: tuple[float, float]) -> str:
    lo, hi = value
    return f"{lo:g}-{hi:g}"


_RANGE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:[-:]\s*(\d+(?:\.\d*)?|\.\d+)\s*)?$")


def _parse_range(option: str, text: str, integer: bool = False) -> tuple[Any, Any]:
    match = _RANGE.match(text)
    if not match:
        fail(f"{option} {text!r}: expected MIN-MAX (e.g. 2-10) or one number", 2)
    lo = float(match.group(1))
    hi = float(match.group(2)) if match.group(2) is not None else lo
    if integer:
        if lo != int(lo) or hi != int(hi):
            fail(f"{option} {text!r}: expected whole numbers", 2)
        return int(lo), int(hi)
    return lo, hi


def _parse_size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        fail(f"--size {text!r}: expected WIDTHxHEIGHT (e.g. 320x240)", 2)
    return int(match.group(1)), int(match.group(2))


def synth(
    ctx: typer.Context,
    outdir: Annotated[Path, typer.Argument(help="Folder to write the world into.")],
    trimmed: Annotated[
        int, typer.Option(help="Trimmed clips (one object throughout; labels balanced).")
    ] = _D["trimmed"],
    untrimmed: Annotated[
        int, typer.Option(help="Untrimmed videos (background with action instances).")
    ] = _D["untrimmed"],
    anomaly: Annotated[
        int, typer.Option(help="Anomaly videos (object present = anomalous frames).")
    ] = _D["anomaly"],
    seed: Annotated[int, typer.Option(help="Seed: same seed, same world.")] = _D["seed"],
    size: Annotated[
        str, typer.Option(help="Frame size WIDTHxHEIGHT, even, 160x120 to 1280x720.")
    ] = f"{_D['width']}x{_D['height']}",
    fps: Annotated[int, typer.Option(help="Frames per second (10-60).")] = _D["fps"],
    codec: Annotated[
        str,
        typer.Option(
            help="libx264 (h264), mpeg4, libvpx-vp9 (vp9), mjpeg or ffv1 "
            "(with --layout, unless given: the dataset's codec)."
        ),
    ] = _D["codec"],
    container: Annotated[
        str | None,
        typer.Option(
            help="mp4, avi, webm, mkv or mov (default: the --layout dataset's, else the "
            "codec's natural one)."
        ),
    ] = _D["container"],
    preset: Annotated[str, typer.Option(help="libx264 preset.")] = _D["preset"],
    quality: Annotated[
        int | None,
        typer.Option(help="CRF (libx264, vp9) or q:v (mpeg4, mjpeg); default: per codec."),
    ] = _D["quality"],
    threads: Annotated[
        int, typer.Option(help="Encoder threads per video (0: ffmpeg decides).")
    ] = _D["threads"],
    background: Annotated[
        str, typer.Option(help="Background gray level range MIN-MAX (per video).")
    ] = _span(_D["background"]),
    noise_sigma: Annotated[float, typer.Option(help="Gaussian pixel noise σ (gray levels).")] = _D[
        "noise_sigma"
    ],
    object_size: Annotated[
        str, typer.Option(help="Object size range, fraction of the shorter frame side.")
    ] = _span(_D["object_size"]),
    max_speed: Annotated[
        float, typer.Option(help="Maximum object speed, frame widths per second.")
    ] = _D["max_speed"],
    trimmed_duration: Annotated[
        str, typer.Option(help="Trimmed clip duration range, seconds.")
    ] = _span(_D["trimmed_duration"]),
    untrimmed_duration: Annotated[
        str, typer.Option(help="Untrimmed video duration range, seconds.")
    ] = _span(_D["untrimmed_duration"]),
    instances: Annotated[
        str, typer.Option(help="Action instances per untrimmed video, MIN-MAX.")
    ] = _span(_D["instances"]),
    instance_duration: Annotated[
        str, typer.Option(help="Action instance duration range, seconds.")
    ] = _span(_D["instance_duration"]),
    min_gap: Annotated[
        float, typer.Option(help="Minimum background between two instances, seconds.")
    ] = _D["min_gap"],
    same_label_prob: Annotated[
        float, typer.Option(help="Chance that a further instance repeats the video's label.")
    ] = _D["same_label_prob"],
    phase_seconds: Annotated[
        float,
        typer.Option(
            help="Draw the first/last seconds of each untrimmed/anomaly instance in a phase "
            "style (white rim / outline only), so single frames show starts and ends. 0 = off."
        ),
    ] = _D["phase_seconds"],
    anomaly_duration: Annotated[
        str, typer.Option(help="Anomaly video duration range, seconds.")
    ] = _span(_D["anomaly_duration"]),
    anomaly_intervals: Annotated[
        str, typer.Option(help="Anomalous intervals per anomaly video, MIN-MAX within 1-2.")
    ] = _span(_D["anomaly_intervals"]),
    anomaly_interval_duration: Annotated[
        str, typer.Option(help="Anomalous interval duration range, seconds.")
    ] = _span(_D["anomaly_interval_duration"]),
    normal_fraction: Annotated[
        float, typer.Option(help="Share of anomaly videos that are normal (no object).")
    ] = _D["normal_fraction"],
    layout: Annotated[
        str | None,
        typer.Option(
            help="Lay the world out like a real dataset: ucf101, hmdb51, kinetics (trimmed "
            "clips), ucf-crime (anomaly videos), thumos14, charades-sta (untrimmed videos). "
            "Only that kind of video is made; OUTDIR gets the dataset's folders and "
            "annotation files plus labels.txt (no world.json)."
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Write into a non-empty OUTDIR that holds no world yet."),
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the world manifest as JSON on stdout.")
    ] = False,
) -> None:
    """Generate synthetic-world videos (trimmed, untrimmed, anomaly) with exact ground truth.

    Writes labels.txt, descriptions.json and world.json, plus per kind: the videos, list.csv,
    and ActivityNet JSON + THUMOS txt (untrimmed) or UCF-Crime temporal annotations (anomaly).
    Rerunning into the same OUTDIR replaces the previous world.
    """
    width, height = _parse_size(size)
    ranges = {
        "background": _parse_range("--background", background, integer=True),
        "object_size": _parse_range("--object-size", object_size),
        "trimmed_duration": _parse_range("--trimmed-duration", trimmed_duration),
        "untrimmed_duration": _parse_range("--untrimmed-duration", untrimmed_duration),
        "instances": _parse_range("--instances", instances, integer=True),
        "instance_duration": _parse_range("--instance-duration", instance_duration),
        "anomaly_duration": _parse_range("--anomaly-duration", anomaly_duration),
        "anomaly_intervals": _parse_range("--anomaly-intervals", anomaly_intervals, integer=True),
        "anomaly_interval_duration": _parse_range(
            "--anomaly-interval-duration", anomaly_interval_duration
        ),
    }
    from zsar_cli.errors import InputError
    from zsar_cli.synthetic import MANIFEST_NAME, SynthConfig, generate_world, layout_spec

    spec = layout_spec(layout) if layout is not None else None
    if spec is not None:
        # The dataset's codec unless --codec was given (UCF101's .avi files are MPEG-4 part 2).
        # (Compared by name: typer may bring its own copy of click's ParameterSource.)
        source = ctx.get_parameter_source("codec")
        if getattr(source, "name", "DEFAULT") in ("DEFAULT", "DEFAULT_MAP"):
            codec = spec.codec
        container = container or spec.container
    config = SynthConfig(
        trimmed=trimmed,
        untrimmed=untrimmed,
        anomaly=anomaly,
        seed=seed,
        width=width,
        height=height,
        fps=fps,
        codec=codec,
        container=container,
        preset=preset,
        quality=quality,
        threads=threads,
        noise_sigma=noise_sigma,
        max_speed=max_speed,
        min_gap=min_gap,
        same_label_prob=same_label_prob,
        phase_seconds=phase_seconds,
        normal_fraction=normal_fraction,
        **ranges,
    )
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"{outdir}: exists and is not a folder")
    if layout is not None:
        if outdir.is_dir() and any(outdir.iterdir()) and not force:
            raise InputError(
                f"{outdir}: folder is not empty; pick another OUTDIR or pass --force "
                "(which replaces the layout's own folders and files there)"
            )
        _synth_layout(outdir, config, layout, json_out)
        return
    if (
        outdir.is_dir()
        and any(outdir.iterdir())
        and not (outdir / MANIFEST_NAME).exists()
        and not force
    ):
        raise InputError(
            f"{outdir}: folder is not empty and holds no world (world.json); "
            "pick another OUTDIR or pass --force"
        )
    total = config.trimmed + config.untrimmed + config.anomaly
    started = time.perf_counter()
    manifest = _generate(generate_world, outdir, config, total)
    elapsed = time.perf_counter() - started

    counts = ", ".join(
        f"{len(manifest.of_kind(k))} {k}" for k in ("trimmed", "untrimmed", "anomaly")
    )
    err_console.print(
        f"wrote {counts} videos ({config.width}x{config.height}, {config.fps} fps, "
        f"{config.codec} {config.container}, seed {config.seed}) to {outdir} "
        f"in {elapsed:.1f} s",
        soft_wrap=True,
    )
    err_console.print(f"  labels: {manifest.labels_file}", soft_wrap=True)
    if config.trimmed:
        err_console.print(f"  trimmed: {manifest.trimmed_list}", soft_wrap=True)
    if config.untrimmed:
        err_console.print(
            f"  untrimmed: {manifest.activitynet_json} (+ {manifest.thumos_dir}/)", soft_wrap=True
        )
    if config.anomaly:
        err_console.print(f"  anomaly: {manifest.anomaly_annotations}", soft_wrap=True)
    if json_out:
        dump_json(manifest.to_json())


def _synth_layout(outdir: Path, config, layout: str, json_out: bool) -> None:
    from zsar_cli.synthetic import generate_layout, layout_config

    config = layout_config(config, layout)
    total = config.trimmed + config.untrimmed + config.anomaly
    started = time.perf_counter()
    plan, _manifest = _generate(
        lambda out, cfg, progress=None: generate_layout(out, cfg, layout, progress),
        outdir,
        config,
        total,
    )
    elapsed = time.perf_counter() - started
    err_console.print(
        f"wrote a {layout} stand-in: {len(plan.videos)} videos, {len(plan.classes)} classes "
        f"({config.width}x{config.height}, {config.fps} fps, {config.codec} {config.container}, "
        f"seed {config.seed}) to {outdir} in {elapsed:.1f} s",
        soft_wrap=True,
    )
    for what, paths in (("videos", plan.videos.values()), ("annotations", plan.files)):
        # One line per top-level folder or file (HMDB51 alone has 36 split files).
        tops: dict[str, int] = {}
        for rel in paths:
            top = rel.split("/")[0] + ("/" if "/" in rel else "")
            tops[top] = tops.get(top, 0) + 1
        for top, n in sorted(tops.items()):
            count = f" ({n} files)" if top.endswith("/") else ""
            err_console.print(
                f"  {what}: {outdir / top}{'/' if top.endswith('/') else ''}{count}", soft_wrap=True
            )
    err_console.print(f"  labels: {outdir / 'labels.txt'}", soft_wrap=True)
    if json_out:
        dump_json(
            {
                "layout": layout,
                "videos": dict(plan.videos),
                "files": sorted(plan.files),
                "classes": list(plan.classes),
            }
        )


def _generate(generate_world, outdir: Path, config, total: int):
    if not show_progress() or total == 0:
        return generate_world(outdir, config)
    from rich.progress import Progress

    with Progress(console=err_console, transient=True) as progress:
        task = progress.add_task("rendering videos", total=total)
        return generate_world(outdir, config, progress=lambda video: progress.advance(task, 1))
