"""The synthetic world: renderer parity, plans, exact ground truth in decoded videos, GT formats."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from collections import Counter
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from zsar_cli.errors import ConfigError
from zsar_cli.synthetic import (
    BACKGROUND_PHRASE,
    COLORS,
    LABELS,
    FrameRenderer,
    SynthConfig,
    WorldObject,
    generate_background_video,
    generate_world,
    label_token,
    load_world,
    object_mask,
    plan_world,
    random_object,
    render_frame,
    style_masks,
)

# A small world whose every kind is present; durations short so encoding stays cheap.
SMALL = {
    "trimmed": 3,
    "untrimmed": 2,
    "anomaly": 3,
    "trimmed_duration": (0.4, 0.8),
    "untrimmed_duration": (4.0, 5.0),
    "instances": (2, 3),
    "instance_duration": (0.6, 1.2),
    "min_gap": 0.4,
    "anomaly_duration": (3.0, 3.0),
    "anomaly_intervals": (2, 2),
    "anomaly_interval_duration": (0.4, 0.8),
    "normal_fraction": 0.34,
}


def decode(path: Path, width: int, height: int) -> np.ndarray:
    """All frames of a video as N×H×W×3 uint8: the reference, decoded by the ffmpeg program
    where it is on PATH, else by a plain PyAV loop (the libraries, not zsar's reader)."""
    if shutil.which("ffmpeg") is None:
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        return np.stack(frames).reshape(-1, height, width, 3)
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(path),
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip
    return np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)


def container_facts(path: Path) -> tuple[int, int, Fraction, float]:
    """(width, height, average frame rate, container duration) by ffprobe where it is on PATH,
    else as PyAV reads them from the container."""
    if shutil.which("ffprobe") is None:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = Fraction(stream.average_rate or 0)
            return stream.width, stream.height, rate, (container.duration or 0) / 1e6
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries",
         "stream=avg_frame_rate,width,height:format=duration", "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    facts = json.loads(probe)
    stream = facts["streams"][0]
    rate = Fraction(stream["avg_frame_rate"])
    return stream["width"], stream["height"], rate, float(facts["format"]["duration"])


def color_counts(frames: np.ndarray) -> tuple[dict[str, np.ndarray], int]:
    """Per colour, per frame: pixels within 45 levels (every channel) of that object colour,
    counted on a lattice at most ~320 pixels wide; returns (counts, pixels per lattice point).

    Gray backgrounds (90-170, σ ≤ 12) are ≥ 74 levels from every object colour in some channel,
    so codec blur at edges cannot make background pixels count.
    """
    step = max(1, frames.shape[2] // 320)
    lattice = frames[:, ::step, ::step]
    counts = {}
    for name, rgb in COLORS.items():
        inside = np.ones(lattice.shape[:3], dtype=bool)
        for channel, value in enumerate(rgb):
            plane = lattice[..., channel]
            inside &= (plane >= max(value - 45, 0)) & (plane <= min(value + 45, 255))
        counts[name] = inside.sum(axis=(1, 2))
    return counts, step * step


def assert_frames_match_truth(frames: np.ndarray, presence: list[str | None], video) -> None:
    """Each frame shows exactly the colour the ground truth says (robust pixel counts)."""
    assert len(frames) == len(presence) == video.num_frames
    counts, weight = color_counts(frames)
    for i, label in enumerate(presence):
        expected_color = label.split()[1] if label else None
        if expected_color:
            obj, t = video.objects_at(i)[0]
            cx, cy = obj.at(t, video.width, video.height)
            side = obj.size * min(video.width, video.height)
            area = object_mask(obj.shape, cx, cy, side, video.width, video.height).sum()
            assert counts[expected_color][i] * weight >= 0.8 * area, (video.video_id, i, label)
        # Other colours: at most a few edge pixels that codec blur happens to mix into their
        # range (x264 builds differ: 3 at most with Debian's ffmpeg, 4 with PyAV's encoder),
        # against the hundreds an object covers.
        for name, per_frame in counts.items():
            if name != expected_color:
                assert per_frame[i] <= 8, (video.video_id, i, name, int(per_frame[i]))


def reference_render(width, height, objects, t, background, noise_sigma, rng):
    """The original full-frame renderer (mgrid masks), kept here as an independent reference."""
    frame = np.full((height, width, 3), float(background), dtype=np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    xx += 0.5
    yy += 0.5
    for obj in objects:
        cx, cy = obj.at(t, width, height)
        half = obj.size * min(width, height) / 2
        if obj.shape == "circle":
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= half**2
        elif obj.shape == "square":
            mask = (np.abs(xx - cx) <= half) & (np.abs(yy - cy) <= half)
        else:
            top, bottom = cy - half, cy + half
            frac = np.clip((yy - top) / max(2 * half, 1e-6), 0, 1)
            mask = (yy >= top) & (yy <= bottom) & (np.abs(xx - cx) <= frac * half)
        frame[mask] = COLORS[obj.color]
    if noise_sigma > 0:
        frame += rng.normal(0.0, noise_sigma, size=frame.shape).astype(np.float32)
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)


def test_render_frame_identical_to_full_frame_reference():
    rng = np.random.default_rng(11)
    for trial in range(60):
        width, height = [(320, 240), (160, 120), (200, 150)][trial % 3]
        objects = [random_object(rng, width, height) for _ in range(1 + trial % 2)]
        t = float(rng.uniform(0, 5))
        seed = int(rng.integers(1000))
        ours = render_frame(width, height, objects, t, 100, 6.0, np.random.default_rng(seed))
        ref = reference_render(width, height, objects, t, 100, 6.0, np.random.default_rng(seed))
        assert np.array_equal(ours, ref), trial
    # An object touching the border and one bigger than the frame still match exactly.
    for obj in (
        WorldObject("circle", "red", 0.45, 54.0, 54.0),
        WorldObject("square", "blue", 1.2, 80, 60),
    ):
        ours = render_frame(160, 120, [obj], 0.0, 128, 0.0)
        assert np.array_equal(ours, reference_render(160, 120, [obj], 0.0, 128, 0.0, None))


def test_frame_renderer_draws_exact_colours_on_the_shape():
    obj = WorldObject("triangle", "green", 0.4, 150.0, 110.0, 30.0, -12.0)
    renderer = FrameRenderer(320, 240, background=97, noise_sigma=0.0, seed=3)
    for t in (0.0, 0.5, 3.0):
        frame = renderer.frame([(obj, t)])
        cx, cy = obj.at(t, 320, 240)
        mask = object_mask("triangle", cx, cy, 0.4 * 240, 320, 240)
        assert (frame[mask] == COLORS["green"]).all()
        assert (frame[~mask] == 97).all()
    noisy = FrameRenderer(320, 240, background=128, noise_sigma=6.0, seed=3)
    a, b = noisy.frame(), noisy.frame()
    assert abs(float(a.std()) - 6.0) < 0.3 and abs(float(a.mean()) - 128) < 0.2
    assert not np.array_equal(a, b)  # noise changes from frame to frame


def test_trimmed_labels_balanced_and_seeded():
    videos = plan_world(SynthConfig(trimmed=30, untrimmed=0, anomaly=0, seed=5), "/w")
    counts = Counter(v.label for v in videos)
    assert set(counts) == set(LABELS)
    assert max(counts.values()) - min(counts.values()) <= 1
    first12 = [v.label for v in videos[:12]]
    assert sorted(first12) == sorted(LABELS)  # one full cycle of the permutation
    other = [v.label for v in plan_world(SynthConfig(trimmed=12, seed=6), "/w")[:12]]
    assert other != first12  # another seed, another permutation
    for v in videos:
        assert v.instances[0].start_frame == 0 and v.instances[0].end_frame == v.num_frames
        assert 2.0 <= v.duration <= 10.0


@pytest.mark.parametrize("fps", [10, 11, 25, 30, 60])
def test_planned_instances_lie_on_an_exact_grid(fps):
    config = SynthConfig(trimmed=0, untrimmed=40, anomaly=20, fps=fps, seed=fps)
    for v in plan_world(config, "/w"):
        assert Fraction(repr(v.duration)) == Fraction(v.num_frames, fps)
        previous_end = None
        for inst in v.instances:
            # The decimal written to the GT files is exactly the frame time: no rounding at all.
            assert Fraction(repr(inst.start)) == Fraction(inst.start_frame, fps)
            assert Fraction(repr(inst.end)) == Fraction(inst.end_frame, fps)
            assert 0 <= inst.start_frame < inst.end_frame <= v.num_frames
            lo, hi = (
                config.instance_duration
                if v.kind == "untrimmed"
                else config.anomaly_interval_duration
            )
            assert lo - 1e-9 <= inst.end - inst.start <= hi + 1e-9
            if previous_end is not None:
                assert inst.start - previous_end >= config.min_gap - 1e-9
            previous_end = inst.end
        if v.kind == "untrimmed":
            assert 1 <= len(v.instances) <= 4
            assert 20 <= v.duration <= 120
        else:
            assert len(v.instances) <= 2
            assert (v.label == BACKGROUND_PHRASE) == (not v.instances)
    anomaly = [v for v in plan_world(config, "/w") if v.kind == "anomaly"]
    assert 1 <= sum(v.is_normal for v in anomaly) < len(anomaly)


def test_a_video_does_not_change_when_other_videos_are_added():
    few = plan_world(SynthConfig(trimmed=2, untrimmed=1, anomaly=1, seed=9), "/w")
    many = plan_world(SynthConfig(trimmed=5, untrimmed=3, anomaly=1, seed=9), "/w")
    by_id = {v.video_id: v for v in many}
    for v in few:
        assert by_id[v.video_id] == v


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("world")
    return generate_world(outdir, SynthConfig(seed=21, **SMALL))


def test_generated_videos_show_objects_exactly_where_the_ground_truth_says(small_world):
    out = small_world.outdir
    fps = small_world.config.fps
    # Ground truth read back from the files, not from the manifest.
    anet = json.loads((out / "untrimmed" / "activitynet.json").read_text())["database"]
    ucf = {
        line.split()[0]: line.split()
        for line in (out / "anomaly" / "temporal_annotation.txt").read_text().splitlines()
    }
    trimmed = dict(csv.reader((out / "trimmed" / "list.csv").open()))
    for video in small_world.videos:
        frames = decode(video.path, video.width, video.height)
        n = len(frames)
        if video.kind == "trimmed":
            presence = [trimmed[video.path.name]] * n
        elif video.kind == "untrimmed":
            record = anet[video.video_id]
            assert record["duration"] == n / fps
            presence = [None] * n
            for ann in record["annotations"]:
                s, e = ann["segment"]
                for i in range(n):
                    if s <= i / fps < e:
                        assert presence[i] is None
                        presence[i] = ann["label"]
        else:
            _, cls, *numbers = ucf[video.path.name]
            label = None if cls == "Normal" else cls.replace("_", " ")
            presence = [None] * n
            for first, last in zip(numbers[::2], numbers[1::2], strict=True):
                if first != "-1":
                    for number in range(int(first), int(last) + 1):  # 1-based inclusive
                        presence[number - 1] = label
        assert presence == video.frame_labels()
        assert_frames_match_truth(frames, presence, video)


def test_ground_truth_files_formats(small_world):
    out = small_world.outdir
    assert (out / "labels.txt").read_text().splitlines() == list(LABELS)
    descriptions = json.loads((out / "descriptions.json").read_text())
    assert [d["label"] for d in descriptions] == list(LABELS)
    for d in descriptions:
        color, shape = d["label"].split()[1:]
        assert len(d["descriptors"]) == 8 and len(set(d["descriptors"])) == 8
        assert d["description"] == f"a {color} {shape} on a plain gray background"
        assert (
            d["start_question"] == f"Does a {color} {shape} appear with a white rim in this frame?"
        )
        assert d["end_question"] == f"Is only the outline of a {color} {shape} left in this frame?"

    rows = list(csv.reader((out / "trimmed" / "list.csv").open()))
    assert rows[0] == ["video", "label"]
    assert [r[0] for r in rows[1:]] == [v.path.name for v in small_world.trimmed]
    assert all((out / "trimmed" / r[0]).is_file() and r[1] in LABELS for r in rows[1:])
    rows = list(csv.reader((out / "untrimmed" / "list.csv").open()))
    assert rows[1:] == [[v.path.name, ""] for v in small_world.untrimmed]

    anet = json.loads((out / "untrimmed" / "activitynet.json").read_text())
    assert set(anet) == {"version", "taxonomy", "database"} and anet["taxonomy"] == []
    assert sorted(anet["database"]) == ["untrimmed_0000", "untrimmed_0001"]
    for vid, record in anet["database"].items():
        assert set(record) == {"subset", "duration", "annotations", "url"}
        assert record["subset"] == "testing" and record["url"] == ""
        assert 4.0 <= record["duration"] <= 5.0
        for ann in record["annotations"]:
            assert set(ann) == {"segment", "label"} and ann["label"] in LABELS
            s, e = ann["segment"]
            assert 0 <= s < e <= record["duration"], vid

    thumos = sorted((out / "untrimmed" / "thumos").iterdir())
    assert [p.name for p in thumos] == sorted(f"{label_token(x)}_test.txt" for x in LABELS)
    thumos_lines = set()
    for path in thumos:
        label = path.name.removesuffix("_test.txt").replace("_", " ")
        for line in path.read_text().splitlines():
            vid, s, e = line.split(" ")
            thumos_lines.add((vid, float(s), float(e), label))
    anet_lines = {
        (vid, *ann["segment"], ann["label"])
        for vid, record in anet["database"].items()
        for ann in record["annotations"]
    }
    assert thumos_lines == anet_lines and len(anet_lines) >= 4

    lines = (out / "anomaly" / "temporal_annotation.txt").read_text().splitlines()
    assert len(lines) == 3
    pattern = re.compile(r"^anomaly_\d{4}\.mp4  (Normal|a_[a-z]+_[a-z]+)(  -?\d+){4}$")
    for line, video in zip(lines, small_world.anomaly, strict=True):
        assert pattern.match(line), line
        _, cls, *numbers = line.split()
        values = [int(x) for x in numbers]
        if video.is_normal:
            assert cls == "Normal" and values == [-1, -1, -1, -1]
        else:
            assert cls == label_token(video.label)
            s1, e1, s2, e2 = values
            assert 1 <= s1 <= e1 < s2 <= e2 <= video.num_frames
            inst = video.instances
            assert (s1, e1) == (inst[0].start_frame + 1, inst[0].end_frame)
    assert {line.split()[1] for line in lines} >= {"Normal"}
    rows = list(csv.reader((out / "anomaly" / "list.csv").open()))
    assert {r[1] for r in rows[1:]} & {BACKGROUND_PHRASE}


def test_same_seed_same_world(small_world, tmp_path):
    again = generate_world(tmp_path / "again", small_world.config)
    files = [
        "labels.txt",
        "descriptions.json",
        "world.json",
        "trimmed/list.csv",
        "untrimmed/activitynet.json",
        "untrimmed/thumos/a_red_circle_test.txt",
        "anomaly/temporal_annotation.txt",
    ]
    for name in files:
        assert (again.outdir / name).read_bytes() == (small_world.outdir / name).read_bytes()
    # world.json names the encoder (same pixels need the same x264 build).
    assert load_world(again.outdir).encoder.startswith(("ffmpeg ", "pyav "))
    for a, b in zip(small_world.videos[:4], again.videos[:4], strict=True):
        assert np.array_equal(decode(a.path, a.width, a.height), decode(b.path, b.width, b.height))
    other = plan_world(SynthConfig(**{**SMALL, "seed": 22}), again.outdir)
    assert [v.instances for v in other] != [v.instances for v in again.videos]


def test_manifest_round_trip(small_world):
    loaded = load_world(small_world.outdir)
    assert loaded == small_world
    video = loaded.untrimmed[0]
    inst = video.instances[0]
    assert video.patch_mask(inst.start_frame, (7, 7)).any()
    assert not video.patch_mask(inst.start_frame - 1, (7, 7)).any() or inst.start_frame == 0


def test_rerun_removes_videos_of_the_previous_world(small_world, tmp_path):
    outdir = tmp_path / "rerun"
    generate_world(outdir, SynthConfig(**{**SMALL, "untrimmed": 0, "anomaly": 0, "trimmed": 3}))
    generate_world(outdir, SynthConfig(**{**SMALL, "untrimmed": 0, "anomaly": 0, "trimmed": 1}))
    assert sorted(p.name for p in (outdir / "trimmed").iterdir()) == [
        "list.csv",
        "trimmed_0000.mp4",
    ]


@pytest.mark.parametrize(
    "options",
    [
        {"width": 160, "height": 120, "fps": 10},
        {"width": 1280, "height": 720, "fps": 60, "noise_sigma": 12.0, "background": (170, 170)},
        {"codec": "mpeg4"},
        {"codec": "vp9"},
        {"codec": "h264", "container": "mkv", "background": (90, 90)},
    ],
    ids=["160x120@10", "1280x720@60", "mpeg4-avi", "vp9-webm", "h264-mkv"],
)
def test_sizes_rates_and_containers(tmp_path, options):
    config = SynthConfig(
        trimmed=1,
        untrimmed=0,
        anomaly=1,
        seed=3,
        trimmed_duration=(0.5, 0.5),
        anomaly_duration=(1.2, 1.2),
        anomaly_intervals=(1, 1),
        anomaly_interval_duration=(0.4, 0.4),
        min_gap=0.2,
        normal_fraction=0.0,
        **options,
    )
    world = generate_world(tmp_path, config)
    for video in world.videos:
        assert video.path.suffix == config.extension
        frames = decode(video.path, config.width, config.height)
        assert_frames_match_truth(frames, video.frame_labels(), video)
        width, height, rate, _ = container_facts(video.path)
        assert (width, height) == (config.width, config.height)
        assert rate == config.fps


def test_background_video_repeats_a_unit_without_reencoding(tmp_path):
    path = generate_background_video(
        tmp_path / "long.mp4", 6.0, size=(160, 120), fps=25, unit_s=2.0, objects=1
    )
    frames = decode(path, 160, 120)
    assert len(frames) == 150
    assert np.array_equal(frames[10], frames[60])  # the unit repeats
    assert sum(color_counts(frames[:1])[0].values()).item() > 200  # the object is drawn
    assert container_facts(path)[3] == pytest.approx(6.0, abs=0.05)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"width": 100}, "--size 100x240"),
        ({"width": 1282}, "--size 1282x240"),
        ({"width": 321}, "must be even"),
        ({"fps": 9}, "--fps 9"),
        ({"fps": 61}, "--fps 61"),
        ({"trimmed": -1}, "--trimmed"),
        ({"codec": "prores"}, "--codec 'prores'"),
        ({"codec": "vp9", "container": "avi"}, "--container avi"),
        ({"anomaly_intervals": (1, 3)}, "--anomaly-intervals"),
        ({"trimmed_duration": (5.0, 2.0)}, "--trimmed-duration"),
        ({"noise_sigma": -1.0}, "--noise-sigma"),
    ],
)
def test_config_rejects_bad_values(options, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        SynthConfig(**options)


def test_config_resolves_codec_aliases_and_containers():
    assert SynthConfig().container == "mp4" and SynthConfig().codec == "libx264"
    assert SynthConfig(codec="vp9").container == "webm"
    assert SynthConfig(codec="mpeg4").extension == ".avi"
    assert SynthConfig(codec="H264", container=".MKV").container == "mkv"
    assert SynthConfig(background=[100, 120]).background == (100, 120)


# ---------------------------------------------------------------------------------------------
# Phase styles: instances that show their start (white rim) and end (outline) in single frames


def test_style_masks_geometry():
    box, plain, rim = style_masks("circle", 80.0, 60.0, 40.0, 160, 120, "plain")
    full = object_mask("circle", 80.0, 60.0, 40.0, 160, 120)
    y0, y1, x0, x1 = box
    assert plain.sum() == full.sum() and not rim.any()
    assert np.array_equal(full[y0:y1, x0:x1], plain)
    box, fill, rim = style_masks("circle", 80.0, 60.0, 40.0, 160, 120, "rim")
    y0, y1, x0, x1 = box
    assert fill.sum() == full.sum() and not (fill & rim).any()
    # the ring: between radius 20 and 27 (1.35x), i.e. area pi * (27^2 - 20^2) ~ 1033 px
    assert abs(int(rim.sum()) - np.pi * (27**2 - 20**2)) < 0.05 * np.pi * (27**2 - 20**2)
    box, outline, rim = style_masks("square", 80.0, 60.0, 40.0, 160, 120, "outline")
    assert not rim.any()
    assert abs(int(outline.sum()) - (40 * 40 - 20 * 20)) <= 2 * 40 * 2  # a 40 px square minus 20 px
    y0, y1, x0, x1 = box
    assert not outline[60 - y0, 80 - x0]  # the centre is a hole
    with pytest.raises(ValueError, match="unknown style"):
        style_masks("square", 80.0, 60.0, 40.0, 160, 120, "glow")


def test_plain_style_renders_exactly_as_before():
    obj = WorldObject("triangle", "blue", 0.35, 90.0, 70.0)
    a = FrameRenderer(160, 120, noise_sigma=6.0, seed=9).frame([(obj, 0.0)])
    b = FrameRenderer(160, 120, noise_sigma=6.0, seed=9).frame([(obj, 0.0, "plain")])
    assert np.array_equal(a, b)
    assert np.array_equal(
        render_frame(160, 120, [obj], noise_sigma=0.0),
        render_frame(160, 120, [obj], noise_sigma=0.0, styles=["plain"]),
    )


def test_phase_seconds_mark_each_instance_start_and_end():
    config = SynthConfig(
        trimmed=1,
        untrimmed=2,
        anomaly=2,
        normal_fraction=0.0,
        seed=4,
        fps=10,
        untrimmed_duration=(12.0, 14.0),
        instance_duration=(3.0, 5.0),
        phase_seconds=0.5,
    )
    videos = plan_world(config, "/w")
    assert all(v.phase_frames == (0 if v.kind == "trimmed" else 5) for v in videos)
    for video in (v for v in videos if v.kind != "trimmed"):
        for inst in video.instances:
            styles = [video.phase_at(i) for i in inst.frames]
            assert styles[:5] == ["rim"] * 5 and styles[-5:] == ["outline"] * 5
            assert set(styles[5:-5]) == {"plain"}
        outside = [i for i in range(video.num_frames) if video.instance_at(i) is None]
        assert outside and all(video.phase_at(i) is None for i in outside)
    # plain world: no phases; a phase never takes more than a third of a short instance
    plain = plan_world(SynthConfig(trimmed=0, untrimmed=1, anomaly=0, seed=4), "/w")[0]
    assert {plain.phase_at(i) for i in plain.instances[0].frames} == {"plain"}
    inst = videos[1].instances[0]
    assert inst.style_at(inst.start_frame, 1000) == "rim"
    assert [inst.style_at(i, 1000) for i in inst.frames].count("rim") == len(inst.frames) // 3
    with pytest.raises(ConfigError, match="--phase-seconds"):
        SynthConfig(phase_seconds=-1)


def test_phase_frames_are_rendered(tmp_path):
    """Decoded frames: white ring pixels around the object in the start phase, the object's
    centre showing background in the end phase, neither in the middle."""
    config = SynthConfig(
        trimmed=0,
        untrimmed=1,
        anomaly=0,
        seed=8,
        fps=10,
        noise_sigma=0.0,
        max_speed=0.0,
        untrimmed_duration=(8.0, 8.0),
        instances=(1, 1),
        instance_duration=(4.0, 4.0),
        phase_seconds=1.0,
    )
    manifest = generate_world(tmp_path / "w", config)
    video = manifest.untrimmed[0]
    frames = list(video.frames())  # as rendered before encoding
    inst = video.instances[0]
    obj = inst.obj
    cx, cy = obj.at(0.0, video.width, video.height)
    white = [int((f.min(axis=2) > 240).sum()) for f in frames]
    for i in range(video.num_frames):
        phase = video.phase_at(i)
        if phase == "rim":
            assert white[i] > 50, i
        else:
            assert white[i] == 0, (i, phase)
        centre = frames[i][int(cy), int(cx)]
        if phase in ("plain", "rim"):
            assert tuple(centre) == COLORS[obj.color]
        else:  # outline (a hole in the middle) or no object at all
            assert tuple(centre) == (video.background,) * 3
    # the decoded video agrees (H.264 blurs edges: counts, not exact pixels)
    decoded = decode(video.path, video.width, video.height)
    starts = [i for i in inst.frames if video.phase_at(i) == "rim"]
    middle = [i for i in inst.frames if video.phase_at(i) == "plain"]
    assert min(int((decoded[i].min(axis=2) > 220).sum()) for i in starts) > 30
    assert max(int((decoded[i].min(axis=2) > 220).sum()) for i in middle) < 5
