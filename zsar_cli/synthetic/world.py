"""The world's records: instances, videos and the manifest (world.json).

Input: a planned world (`plan_world`) or a world folder written by `generate_world`.
Output: `Instance`, `WorldVideo` (its exact per-frame ground truth and its frames as rendered
before encoding) and `WorldManifest`, read back by `load_world` from OUTDIR/world.json.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zsar_cli.errors import InputError
from zsar_cli.synthetic.config import SynthConfig
from zsar_cli.synthetic.render import FrameRenderer, object_patch_mask
from zsar_cli.synthetic.vocabulary import WorldObject

# numpy is imported inside functions only; the package docstring says why.
if TYPE_CHECKING:
    import numpy as np

KINDS: tuple[str, ...] = ("trimmed", "untrimmed", "anomaly")
MANIFEST_NAME = "world.json"


@dataclass(frozen=True)
class Instance:
    """An object present in frames [start_frame, end_frame) (end exclusive) of a video."""

    label: str
    start_frame: int
    end_frame: int
    fps: int
    obj: WorldObject

    @property
    def start(self) -> float:
        return _seconds(self.start_frame, self.fps)

    @property
    def end(self) -> float:
        return _seconds(self.end_frame, self.fps)

    @property
    def frames(self) -> range:
        return range(self.start_frame, self.end_frame)

    def style_at(self, frame_index: int, phase_frames: int) -> str:
        """The object's phase style in a frame of this instance: "rim" in its first
        `phase_frames` frames, "outline" in its last ones (each at most a third of it)."""
        n = min(phase_frames, len(self.frames) // 3)
        if frame_index < self.start_frame + n:
            return "rim"
        if frame_index >= self.end_frame - n:
            return "outline"
        return "plain"


def _seconds(frames: int, fps: int) -> float:
    return round(frames / fps, 6)


@dataclass(frozen=True)
class WorldVideo:
    """One generated video and its ground truth."""

    video_id: str
    kind: str
    path: Path
    label: str | None  # trimmed: its label; anomaly: label or BACKGROUND_PHRASE; untrimmed: None
    width: int
    height: int
    fps: int
    num_frames: int
    background: int
    noise_sigma: float
    noise_seed: int
    instances: tuple[Instance, ...]
    phase_frames: int = 0  # frames of each instance's start/end phase style (0: plain only)

    @property
    def duration(self) -> float:
        return _seconds(self.num_frames, self.fps)

    @property
    def is_normal(self) -> bool:
        return not self.instances

    def instance_at(self, frame_index: int) -> Instance | None:
        for inst in self.instances:
            if inst.start_frame <= frame_index < inst.end_frame:
                return inst
        return None

    def objects_at(self, frame_index: int) -> list[tuple[WorldObject, float]]:
        """(object, seconds since it appeared) for the objects drawn in frame `frame_index`."""
        inst = self.instance_at(frame_index)
        if inst is None:
            return []
        return [(inst.obj, (frame_index - inst.start_frame) / self.fps)]

    def phase_at(self, frame_index: int) -> str | None:
        """ "rim" / "outline" / "plain" for a frame with an object, None for background only."""
        inst = self.instance_at(frame_index)
        return None if inst is None else inst.style_at(frame_index, self.phase_frames)

    def frame_labels(self) -> list[str | None]:
        """Per frame: the label of the object drawn in it, or None for background only."""
        labels: list[str | None] = [None] * self.num_frames
        for inst in self.instances:
            labels[inst.start_frame : inst.end_frame] = [inst.label] * len(inst.frames)
        return labels

    def object_present(self) -> np.ndarray:
        """Boolean per frame: an object (an anomaly, an action) is drawn in it."""
        import numpy as np

        present = np.zeros(self.num_frames, dtype=bool)
        for inst in self.instances:
            present[inst.start_frame : inst.end_frame] = True
        return present

    def patch_mask(self, frame_index: int, grid: tuple[int, int]) -> np.ndarray:
        """Patch cells (rows×cols) covered by the object in that frame; all False if none."""
        import numpy as np

        out = np.zeros(grid, dtype=bool)
        for obj, t in self.objects_at(frame_index):
            out |= object_patch_mask(obj, t, self.width, self.height, grid)
        return out

    def frames(self) -> Iterator[np.ndarray]:
        """The video's frames as rendered before encoding, one at a time."""
        renderer = FrameRenderer(
            self.width, self.height, self.background, self.noise_sigma, self.noise_seed
        )
        for i in range(self.num_frames):
            phase = self.phase_at(i)
            yield renderer.frame([(o, t, phase or "plain") for o, t in self.objects_at(i)])


@dataclass(frozen=True)
class WorldManifest:
    """What `generate_world` wrote: the config, every video and the ground-truth files."""

    outdir: Path
    config: SynthConfig
    videos: tuple[WorldVideo, ...]
    # Which encoder and version wrote the videos ("" in a manifest from before it was recorded):
    # x264 builds differ, so the same seed makes the same pixels only with the same encoder.
    encoder: str = ""

    def of_kind(self, kind: str) -> tuple[WorldVideo, ...]:
        return tuple(v for v in self.videos if v.kind == kind)

    @property
    def trimmed(self) -> tuple[WorldVideo, ...]:
        return self.of_kind("trimmed")

    @property
    def untrimmed(self) -> tuple[WorldVideo, ...]:
        return self.of_kind("untrimmed")

    @property
    def anomaly(self) -> tuple[WorldVideo, ...]:
        return self.of_kind("anomaly")

    def video(self, video_id: str) -> WorldVideo:
        for v in self.videos:
            if v.video_id == video_id:
                return v
        raise KeyError(video_id)

    @property
    def labels_file(self) -> Path:
        return self.outdir / "labels.txt"

    @property
    def descriptions_file(self) -> Path:
        return self.outdir / "descriptions.json"

    @property
    def trimmed_list(self) -> Path:
        return self.outdir / "trimmed" / "list.csv"

    @property
    def untrimmed_list(self) -> Path:
        return self.outdir / "untrimmed" / "list.csv"

    @property
    def activitynet_json(self) -> Path:
        return self.outdir / "untrimmed" / "activitynet.json"

    @property
    def thumos_dir(self) -> Path:
        return self.outdir / "untrimmed" / "thumos"

    @property
    def anomaly_list(self) -> Path:
        return self.outdir / "anomaly" / "list.csv"

    @property
    def anomaly_annotations(self) -> Path:
        return self.outdir / "anomaly" / "temporal_annotation.txt"

    def to_json(self) -> dict[str, Any]:
        return {
            "format": "zsar-world",
            "version": 1,
            "config": asdict(self.config),
            "encoder": self.encoder,
            "videos": [_video_to_json(v, self.outdir) for v in self.videos],
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any], outdir: Path) -> WorldManifest:
        config = SynthConfig(**payload["config"])
        videos = tuple(_video_from_json(v, outdir) for v in payload["videos"])
        return cls(outdir, config, videos, str(payload.get("encoder", "")))


def _video_to_json(video: WorldVideo, outdir: Path) -> dict[str, Any]:
    record = asdict(video)
    record["path"] = video.path.relative_to(outdir).as_posix()
    return record


def _video_from_json(record: dict[str, Any], outdir: Path) -> WorldVideo:
    instances = tuple(
        Instance(
            label=i["label"],
            start_frame=i["start_frame"],
            end_frame=i["end_frame"],
            fps=i["fps"],
            obj=WorldObject(**i["obj"]),
        )
        for i in record["instances"]
    )
    return WorldVideo(**{**record, "path": outdir / record["path"], "instances": instances})


def load_world(outdir: str | Path) -> WorldManifest:
    """The manifest of a world written by `generate_world` (OUTDIR/world.json)."""
    outdir = Path(outdir)
    path = outdir / MANIFEST_NAME
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: no world manifest here (generate one with zsar synth)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable world manifest: {exc}") from None
    if payload.get("format") != "zsar-world":
        raise InputError(f"{path}: not a zsar world manifest")
    return WorldManifest.from_json(payload, outdir)
