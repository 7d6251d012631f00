"""Generation: a whole world folder, or one long background video for benchmarks.

Input: a `SynthConfig` (or a duration and size). Output: the world's videos, rendered frame by
frame straight into the encoder, then its ground-truth files (`generate_world`); or one long
video made by repeating an encoded unit (`generate_background_video`).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zsar_cli.errors import InputError
from zsar_cli.synthetic.codecs import CONTAINERS, resolve_codec, write_video
from zsar_cli.synthetic.config import SynthConfig
from zsar_cli.synthetic.ground_truth import write_ground_truth
from zsar_cli.synthetic.plan import plan_world
from zsar_cli.synthetic.render import FrameRenderer
from zsar_cli.synthetic.vocabulary import random_object
from zsar_cli.synthetic.world import KINDS, MANIFEST_NAME, WorldManifest, WorldVideo

# numpy is imported inside functions only; the package docstring says why.
if TYPE_CHECKING:
    import numpy as np

_VIDEO_EXTENSIONS = {f".{c}" for c in CONTAINERS}


def _remove_previous(outdir: Path) -> None:
    """Delete what an earlier world left here (our own file names only), so no stale video
    from a bigger run is picked up by a folder scan."""
    for kind in KINDS:
        folder = outdir / kind
        if not folder.is_dir():
            continue
        for path in folder.glob(f"{kind}_[0-9]*"):
            if path.suffix in _VIDEO_EXTENSIONS and path.is_file():
                path.unlink()
        for name in ("list.csv", "activitynet.json", "temporal_annotation.txt"):
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()
        for path in (folder / "thumos").glob("*_test.txt"):
            path.unlink()
    with contextlib.suppress(FileNotFoundError):
        (outdir / MANIFEST_NAME).unlink()


def generate_world(
    outdir: str | Path,
    config: SynthConfig | None = None,
    progress: Callable[[WorldVideo], None] | None = None,
) -> WorldManifest:
    """Render and encode every video of the world into `outdir`, then write the ground truth.

    Videos are rendered frame by frame straight into the encoder (the ffmpeg program, else PyAV:
    zsar_cli.video_write). `progress` is called after each video.
    The manifest (world.json) is written last: its presence marks a complete world.
    """
    config = config or SynthConfig()
    outdir = Path(outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{outdir}: cannot create the output folder: {exc.strerror}") from None
    _remove_previous(outdir)
    videos = plan_world(config, outdir)
    for v in videos:
        v.path.parent.mkdir(parents=True, exist_ok=True)
        write_video(
            v.path,
            v.frames(),
            v.width,
            v.height,
            v.fps,
            codec=config.codec,
            preset=config.preset,
            quality=config.quality,
            threads=config.threads,
        )
        if progress is not None:
            progress(v)
    from zsar_cli.video import decoder_version
    from zsar_cli.video_write import encoder

    manifest = WorldManifest(outdir, config, videos, decoder_version(encoder()))
    write_ground_truth(manifest)
    return manifest


def generate_background_video(
    path: str | Path,
    duration_s: float,
    size: tuple[int, int] = (640, 360),
    fps: int = 25,
    seed: int = 0,
    background: int = 128,
    noise_sigma: float = 6.0,
    codec: str = "libx264",
    preset: str = "veryfast",
    quality: int | None = None,
    unit_s: float = 10.0,
    pool_frames: int = 16,
    objects: int = 0,
) -> Path:
    """A long world video for benchmarks, cheaply: gray + noise (and `objects` moving objects).

    One `unit_s`-second unit is rendered (from `pool_frames` distinct noise frames) and encoded
    with a keyframe at its start; longer videos repeat that unit by stream copy (no re-encoding),
    so a 60-minute 640x360 video costs about as much as 10 s plus writing the file (~0.45 Mbit/s
    at the defaults: ~200 MB per hour).
    """
    import numpy as np

    from zsar_cli.video import loop_video

    path = Path(path)
    width, height = size
    total = max(1, round(duration_s * fps))
    unit = min(total, max(1, round(unit_s * fps)))
    renderer = FrameRenderer(width, height, background, noise_sigma, seed)
    rng = np.random.default_rng([seed, 7])
    things = [random_object(rng, width, height) for _ in range(objects)]
    pool = [renderer.frame() for _ in range(pool_frames)]

    def unit_frames() -> Iterator[np.ndarray]:
        for i in range(unit):
            if things:
                yield renderer.frame([(obj, i / fps) for obj in things])
            else:
                yield pool[i % len(pool)]

    codec = resolve_codec(codec)
    # One closed GOP per unit and no B-frames, so units can be concatenated packet by packet.
    gop: dict[str, Any] = {"g": unit}
    if codec == "libx264":
        gop.update({"bf": 0, "x264-params": "open-gop=0:scenecut=0"})
    if total == unit:
        write_video(path, unit_frames(), width, height, fps, codec, preset, quality, 0, gop)
        return path
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        unit_path = Path(tmp) / f"unit{path.suffix}"
        write_video(unit_path, unit_frames(), width, height, fps, codec, preset, quality, 0, gop)
        loop_video(unit_path, path, total)
    return path
