"""The ground-truth files of a world folder, from its manifest.

Input: a `WorldManifest`. Output: OUTDIR/labels.txt, descriptions.json, trimmed/ untrimmed/ and
anomaly/ list.csv, untrimmed/activitynet.json and thumos/<label>_test.txt, anomaly/
temporal_annotation.txt (UCF-Crime lines), and world.json last; each written atomically.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from zsar_cli.outputs import write_text_atomic
from zsar_cli.synthetic.vocabulary import LABELS, label_token, world_descriptions
from zsar_cli.synthetic.world import MANIFEST_NAME, WorldManifest, WorldVideo

NORMAL_CLASS = "Normal"


def _number(x: float) -> str:
    return repr(round(float(x), 6))


def ucf_crime_line(video: WorldVideo) -> str:
    """`name.ext  Class  s1  e1  s2  e2`: 1-based inclusive frame numbers, -1 when absent."""
    cls = NORMAL_CLASS if video.is_normal else label_token(video.instances[0].label)
    numbers: list[int] = []
    for inst in video.instances[:2]:
        numbers += [inst.start_frame + 1, inst.end_frame]  # [s, e) 0-based → [s+1, e] 1-based
    numbers += [-1] * (4 - len(numbers))
    return "  ".join([video.path.name, cls, *(str(x) for x in numbers)])


def activitynet_json(videos: Iterable[WorldVideo]) -> dict[str, Any]:
    return {
        "version": "VERSION 1.3",
        "taxonomy": [],
        "database": {
            v.video_id: {
                "subset": "testing",
                "duration": v.duration,
                "annotations": [
                    {"segment": [inst.start, inst.end], "label": inst.label} for inst in v.instances
                ],
                "url": "",
            }
            for v in videos
        },
    }


def _list_csv(videos: Iterable[WorldVideo]) -> str:
    rows = ["video,label"] + [f"{v.path.name},{v.label or ''}" for v in videos]
    return "\n".join(rows) + "\n"


def write_ground_truth(manifest: WorldManifest) -> list[Path]:
    """labels.txt, descriptions.json, per-kind lists and annotation files, world.json last."""
    out = manifest.outdir
    written: list[Path] = []

    def put(path: Path, text: str) -> None:
        # `zsar synth` owns its world folder (it refuses a foreign non-empty one), so its files
        # are replaced whole; the writer still makes each appear atomically.
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text, force=True)
        written.append(path)

    put(manifest.labels_file, "\n".join(LABELS) + "\n")
    put(manifest.descriptions_file, json.dumps(world_descriptions(), indent=2) + "\n")
    if manifest.config.trimmed:
        put(manifest.trimmed_list, _list_csv(manifest.trimmed))
    if manifest.config.untrimmed:
        untrimmed = manifest.untrimmed
        put(manifest.untrimmed_list, _list_csv(untrimmed))
        put(manifest.activitynet_json, json.dumps(activitynet_json(untrimmed), indent=1) + "\n")
        for label in LABELS:
            lines = [
                f"{v.video_id} {_number(inst.start)} {_number(inst.end)}"
                for v in untrimmed
                for inst in v.instances
                if inst.label == label
            ]
            put(
                manifest.thumos_dir / f"{label_token(label)}_test.txt",
                "".join(line + "\n" for line in lines),
            )
    if manifest.config.anomaly:
        put(manifest.anomaly_list, _list_csv(manifest.anomaly))
        put(
            manifest.anomaly_annotations,
            "".join(ucf_crime_line(v) + "\n" for v in manifest.anomaly),
        )
    put(out / MANIFEST_NAME, json.dumps(manifest.to_json(), indent=1) + "\n")
    return written
