"""World stand-ins laid out like real datasets (`zsar synth OUTDIR --layout NAME`).

Input: a generated world (`WorldManifest`, rendered into a work folder). Output: the same videos
moved and renamed into a dataset's folders, with that dataset's annotation files written from the
manifest (nothing is re-rendered), plus OUTDIR/labels.txt (the classes as the dataset spells
them) and descriptions.json (the world's descriptions under those names: a stand-in for `zsar
describe`). Layouts: ucf101, hmdb51, kinetics (trimmed clips), ucf-crime (anomaly videos), thumos14
and charades-sta (untrimmed videos).

Class names follow each dataset's style and turn back into the world label text through
`zsar_cli.labels.label_text`: UCF101/THUMOS14/UCF-Crime CamelCase ("ARedCircle"), HMDB51
snake_case ("a_red_circle"), Kinetics and Charades-STA the text itself ("a red circle").
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from zsar_cli.errors import ConfigError, InputError
from zsar_cli.outputs import write_text_atomic
from zsar_cli.synthetic.config import SynthConfig
from zsar_cli.synthetic.generate import generate_world
from zsar_cli.synthetic.ground_truth import NORMAL_CLASS
from zsar_cli.synthetic.vocabulary import LABELS, label_token
from zsar_cli.synthetic.world import KINDS, WorldManifest, WorldVideo


@dataclass(frozen=True)
class LayoutSpec:
    """Which world videos a layout uses, and the real dataset's codec and container."""

    kind: str
    codec: str
    container: str


LAYOUTS: dict[str, LayoutSpec] = {
    # UCF101 and HMDB51 ship XviD/DivX .avi files: MPEG-4 part 2 in AVI.
    "ucf101": LayoutSpec("trimmed", "mpeg4", "avi"),
    "hmdb51": LayoutSpec("trimmed", "mpeg4", "avi"),
    "kinetics": LayoutSpec("trimmed", "libx264", "mp4"),
    "ucf-crime": LayoutSpec("anomaly", "libx264", "mp4"),
    "thumos14": LayoutSpec("untrimmed", "libx264", "mp4"),
    "charades-sta": LayoutSpec("untrimmed", "libx264", "mp4"),
}
SPLITS = (1, 2, 3)  # UCF101 and HMDB51 each have three train/test splits


@dataclass(frozen=True)
class DatasetLayout:
    """A planned stand-in: where each world video goes and the annotation files' text.

    `videos` maps world video ids to paths relative to OUTDIR; `files` maps annotation paths
    (relative to OUTDIR) to their text; `roots` are the top-level names the layout owns.
    """

    name: str
    videos: dict[str, str]
    files: dict[str, str]
    classes: tuple[str, ...]
    roots: tuple[str, ...]


def layout_spec(name: str) -> LayoutSpec:
    if name not in LAYOUTS:
        raise ConfigError(f"--layout {name!r}: unknown (known: {', '.join(LAYOUTS)})")
    return LAYOUTS[name]


def camel_case(label: str) -> str:
    """'a red circle' → 'ARedCircle' (UCF101, THUMOS14 and UCF-Crime class names)."""
    return "".join(word[:1].upper() + word[1:] for word in label.split())


def layout_config(config: SynthConfig, name: str) -> SynthConfig:
    """The world to render for a layout: only the kind of video the dataset has."""
    kind = layout_spec(name).kind
    counts: dict[str, int] = {k: (getattr(config, k) if k == kind else 0) for k in KINDS}
    if counts[kind] == 0:
        raise ConfigError(f"--layout {name}: needs --{kind} > 0 ({kind} videos)")
    return replace(
        config,
        trimmed=counts["trimmed"],
        untrimmed=counts["untrimmed"],
        anomaly=counts["anomaly"],
    )


def _lines(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def _by_class(videos: tuple[WorldVideo, ...]) -> dict[str, list[WorldVideo]]:
    """World label → its videos in world order, for every label (empty lists kept)."""
    out: dict[str, list[WorldVideo]] = {label: [] for label in LABELS}
    for v in videos:
        if v.label in out:
            out[v.label].append(v)
    return out


def _rotating_test(n: int, split: int, share: float) -> set[int]:
    """Members (0..n-1) in the test set of `split`: a block of round(share·n) (at least one)
    that moves along with the split, so each split tests every class."""
    if n == 0:
        return set()
    size = max(1, min(n, round(share * n)))
    first = (split - 1) * size
    return {(first + j) % n for j in range(size)}


def _ucf101(manifest: WorldManifest, ext: str) -> DatasetLayout:
    classes = sorted(camel_case(label) for label in LABELS)
    index = {c: i for i, c in enumerate(classes, 1)}
    groups = _by_class(manifest.trimmed)
    # Real protocol: 25 groups per class; split k tests groups 7k-6..7k (22-25 are always
    # train). Scaled down: clip j is group j+1 (wrapping after 25) and each split tests a
    # block of b groups, b = min(7, n_min // 3), so each split tests every class; with fewer
    # than three clips per class the splits reuse groups. At 25 clips per class this is the
    # real assignment.
    n_min = min(len(v) for v in groups.values())
    block = max(1, min(7, n_min // 3))
    videos: dict[str, str] = {}
    rel: dict[str, tuple[str, int]] = {}  # world id → (list path, group)
    for label, clips in groups.items():
        cls = camel_case(label)
        for j, v in enumerate(clips):
            group, clip = j % 25 + 1, j // 25 + 1
            name = f"v_{cls}_g{group:02d}_c{clip:02d}{ext}"
            videos[v.video_id] = f"UCF-101/{cls}/{name}"
            rel[v.video_id] = (f"{cls}/{name}", group)
    files = {"ucfTrainTestlist/classInd.txt": _lines([f"{i} {c}" for c, i in index.items()])}
    for split in SPLITS:
        if n_min >= 3:
            test_groups = set(range((split - 1) * block + 1, split * block + 1))
        else:
            test_groups = {(split - 1) % max(1, n_min) + 1}
        test = sorted(p for p, g in rel.values() if g in test_groups)
        train = sorted(p for p, g in rel.values() if g not in test_groups)
        files[f"ucfTrainTestlist/testlist{split:02d}.txt"] = _lines(test)
        files[f"ucfTrainTestlist/trainlist{split:02d}.txt"] = _lines(
            [f"{p} {index[p.split('/')[0]]}" for p in train]
        )
    return DatasetLayout("ucf101", videos, files, tuple(classes), ("UCF-101", "ucfTrainTestlist"))


def _hmdb51(manifest: WorldManifest, ext: str) -> DatasetLayout:
    videos: dict[str, str] = {}
    files: dict[str, str] = {}
    classes = []
    for label, clips in _by_class(manifest.trimmed).items():
        cls = label_token(label)
        classes.append(cls)
        # HMDB51 clip names: <source video>_<class>_<body>_<camera motion>_<people>_<view>_
        # <quality>_<clip index>; the world video is the source, one clip of it.
        names = [f"{v.video_id}_{cls}_f_nm_np1_fr_med_0{ext}" for v in clips]
        for v, name in zip(clips, names, strict=True):
            videos[v.video_id] = f"hmdb51/{cls}/{name}"
        for split in SPLITS:
            # 70/30 per class like the real splits; no clip is left unused (0) here.
            test = _rotating_test(len(names), split, 0.3)
            lines = [f"{name} {2 if j in test else 1}" for j, name in enumerate(names)]
            files[f"testTrainMulti_7030_splits/{cls}_test_split{split}.txt"] = _lines(lines)
    return DatasetLayout(
        "hmdb51", videos, files, tuple(classes), ("hmdb51", "testTrainMulti_7030_splits")
    )


_YOUTUBE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_CHARADES_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _ids(seed: int, purpose: int, count: int, chars: str, length: int) -> list[str]:
    """`count` distinct random ids (seeded, so a seed fixes the file names too)."""
    import numpy as np

    rng = np.random.default_rng([seed, purpose])
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < count:
        ident = "".join(chars[i] for i in rng.integers(len(chars), size=length))
        if ident not in seen:
            seen.add(ident)
            out.append(ident)
    return out


def _kinetics(manifest: WorldManifest, ext: str) -> DatasetLayout:
    import numpy as np

    clips = manifest.trimmed
    ids = _ids(manifest.config.seed, 901, len(clips), _YOUTUBE_CHARS, 11)
    rng = np.random.default_rng([manifest.config.seed, 902])
    videos: dict[str, str] = {}
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")  # quotes a label only where CSV needs it
    writer.writerow(["label", "youtube_id", "time_start", "time_end", "split"])
    for v, ytid in zip(clips, ids, strict=True):
        # The clip's place in its (imaginary) YouTube video, whole seconds like the real CSVs.
        start = int(rng.integers(0, 300))
        end = start + max(1, round(v.duration))
        videos[v.video_id] = f"kinetics600/val/{v.label}/{ytid}_{start:06d}_{end:06d}{ext}"
        writer.writerow([v.label, ytid, start, end, "val"])
    # K400 = the first half of the sorted labels; K600 adds the other half ("novel" classes).
    ordered = sorted(LABELS)
    files = {
        "kinetics600/validate.csv": table.getvalue(),
        "kinetics400_labels.txt": _lines(ordered[: len(ordered) // 2]),
    }
    return DatasetLayout(
        "kinetics", videos, files, tuple(ordered), ("kinetics600", "kinetics400_labels.txt")
    )


_UCF_CRIME_TEST = "Testing_Normal_Videos_Anomaly"
_UCF_CRIME_TRAIN = "Training_Normal_Videos_Anomaly"


def _ucf_crime(manifest: WorldManifest, ext: str) -> DatasetLayout:
    anomaly = manifest.anomaly
    normal = [v for v in anomaly if v.is_normal]
    groups = {
        label: [v for v in clips if not v.is_normal] for label, clips in _by_class(anomaly).items()
    }
    groups[NORMAL_CLASS] = normal
    videos: dict[str, str] = {}
    train: list[str] = []
    test: list[str] = []
    temporal: list[str] = []
    for label, members in groups.items():
        # The first half (at least one) of each class is for testing, the rest for training.
        n_test = (len(members) + 1) // 2
        for j, v in enumerate(members):
            is_test = j < n_test
            if label == NORMAL_CLASS:
                # The real file names differ by split: Normal_Videos_003 (test) and
                # Normal_Videos001 (train).
                folder = _UCF_CRIME_TEST if is_test else _UCF_CRIME_TRAIN
                name = (
                    f"Normal_Videos_{j + 1:03d}_x264"
                    if is_test
                    else f"Normal_Videos{j + 1:03d}_x264"
                )
                listed = f"{folder}/{name}{ext}"
                videos[v.video_id] = listed
                cls = NORMAL_CLASS
            else:
                cls = camel_case(label)
                name = f"{cls}{j + 1:03d}_x264"
                listed = f"{cls}/{name}{ext}"
                videos[v.video_id] = f"Anomaly-Videos/{listed}"
            (test if is_test else train).append(listed)
            if is_test:
                temporal.append(_ucf_crime_line(f"{name}{ext}", cls, v))

    # The real files list the anomaly classes alphabetically, then the normal videos.
    def order(line: str) -> tuple[bool, str]:
        return "Normal_Videos" in line, line

    files = {
        "Anomaly_Train.txt": _lines(sorted(train, key=order)),
        "Anomaly_Test.txt": _lines(sorted(test, key=order)),
        "Temporal_Anomaly_Annotation_for_Testing_Videos.txt": _lines(sorted(temporal, key=order)),
    }
    classes = (*sorted(camel_case(label) for label in LABELS), NORMAL_CLASS)
    roots = ("Anomaly-Videos", _UCF_CRIME_TEST, _UCF_CRIME_TRAIN, *files)
    return DatasetLayout("ucf-crime", videos, files, classes, roots)


def _ucf_crime_line(name: str, cls: str, video: WorldVideo) -> str:
    """`name  Class  s1  e1  s2  e2`: 1-based inclusive frame numbers, -1 when absent."""
    numbers: list[int] = []
    for inst in video.instances[:2]:
        numbers += [inst.start_frame + 1, inst.end_frame]  # [s, e) 0-based → [s+1, e] 1-based
    numbers += [-1] * (4 - len(numbers))
    return "  ".join([name, cls, *(str(x) for x in numbers)])


def _seconds(x: float) -> str:
    return repr(round(float(x), 6))


def _thumos14(manifest: WorldManifest, ext: str) -> DatasetLayout:
    videos: dict[str, str] = {}
    lines: dict[str, list[str]] = {label: [] for label in LABELS}
    for i, v in enumerate(manifest.untrimmed, 1):
        vid = f"video_test_{i:07d}"
        videos[v.video_id] = f"test/{vid}{ext}"
        for inst in v.instances:
            lines[inst.label].append(f"{vid} {_seconds(inst.start)} {_seconds(inst.end)}")
    folder = "TH14_Temporal_annotations_test/annotation"
    files = {f"{folder}/{camel_case(label)}_test.txt": _lines(lines[label]) for label in LABELS}
    files[f"{folder}/Ambiguous_test.txt"] = ""  # the world has no ambiguous spans
    classes = tuple(sorted(camel_case(label) for label in LABELS))
    return DatasetLayout(
        "thumos14", videos, files, classes, ("test", "TH14_Temporal_annotations_test")
    )


def _charades_sta(manifest: WorldManifest, ext: str) -> DatasetLayout:
    untrimmed = manifest.untrimmed
    ids = _ids(manifest.config.seed, 903, len(untrimmed), _CHARADES_CHARS, 5)
    videos: dict[str, str] = {}
    lines: list[str] = []
    for v, cid in zip(untrimmed, ids, strict=True):
        videos[v.video_id] = f"Charades_v1_480/{cid}{ext}"
        seen: set[str] = set()
        for inst in sorted(v.instances, key=lambda i: i.start_frame):
            # One moment per (video, sentence): a repeated label keeps its first instance.
            if inst.label in seen:
                continue
            seen.add(inst.label)
            lines.append(f"{cid} {inst.start:.1f} {inst.end:.1f}##{inst.label}")
    files = {"charades_sta_test.txt": _lines(lines)}
    return DatasetLayout(
        "charades-sta", videos, files, LABELS, ("Charades_v1_480", "charades_sta_test.txt")
    )


_PLANNERS: dict[str, Callable[[WorldManifest, str], DatasetLayout]] = {
    "ucf101": _ucf101,
    "hmdb51": _hmdb51,
    "kinetics": _kinetics,
    "ucf-crime": _ucf_crime,
    "thumos14": _thumos14,
    "charades-sta": _charades_sta,
}


def plan_layout(manifest: WorldManifest, name: str) -> DatasetLayout:
    """Where each video of `manifest` goes in dataset `name`, and its annotation files (pure)."""
    layout_spec(name)
    return _PLANNERS[name](manifest, manifest.config.extension)


def _descriptions(classes: tuple[str, ...]) -> list[dict[str, Any]]:
    """The world's hand-written descriptions under the dataset's class names (what `zsar
    describe` would give a recipe: descriptors and ZEAL's start/end questions)."""
    from zsar_cli.labels import label_text
    from zsar_cli.synthetic.vocabulary import world_descriptions

    by_text = {record["label"]: record for record in world_descriptions()}
    return [{**by_text[label_text(c)], "label": c} for c in classes if label_text(c) in by_text]


def write_layout(plan: DatasetLayout, manifest: WorldManifest, outdir: Path) -> None:
    """Move the world's videos to their dataset paths and write the annotation files."""
    for root in plan.roots:
        # A rerun (--force) replaces what an earlier stand-in left under the layout's own names.
        target = outdir / root
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
    for video_id, rel in plan.videos.items():
        dest = outdir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        manifest.video(video_id).path.replace(dest)
    standard = {
        **plan.files,
        "labels.txt": _lines(list(plan.classes)),
        "descriptions.json": json.dumps(_descriptions(plan.classes), indent=2) + "\n",
    }
    for rel, text in standard.items():
        path = outdir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text, force=True)


def generate_layout(
    outdir: str | Path,
    config: SynthConfig,
    name: str,
    progress: Callable[[WorldVideo], None] | None = None,
) -> tuple[DatasetLayout, WorldManifest]:
    """Render the world for layout `name` into a work folder inside `outdir`, then lay it out.

    The work folder (OUTDIR/.world-*) is removed afterwards, whatever happens, so OUTDIR holds
    only what the real dataset has plus labels.txt.
    """
    outdir = Path(outdir)
    config = layout_config(config, name)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{outdir}: cannot create the output folder: {exc.strerror}") from None
    work = Path(tempfile.mkdtemp(prefix=".world-", dir=outdir))
    try:
        manifest = generate_world(work, config, progress)
        plan = plan_layout(manifest, name)
        write_layout(plan, manifest, outdir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return plan, manifest
