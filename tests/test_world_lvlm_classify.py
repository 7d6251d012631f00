"""The world test of `zsar classify --lvlm builtin:world-lvlm`: CLIP shortlists 5 labels, the
world LVLM picks among them from 16 linearly sampled frames of freshly generated trimmed world
videos (a seed, frame size and frame rate never used in training)."""

from __future__ import annotations

import json

import pytest

from zsar_cli import synthetic
from zsar_cli.cli.app import app


def classify(runner, world, *extra: str) -> dict[str, list[str]]:
    """Per video, its true label followed by its ranked labels."""
    result = runner.invoke(
        app,
        [
            "classify",
            str(world / "trimmed" / "list.csv"),
            "--labels",
            str(world / "labels.txt"),
            "--model",
            "builtin:world-clip",
            "--device",
            "cpu",
            "--json",
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    videos = json.loads(result.stdout)["videos"]
    assert len(videos) == 24 and all(v["error"] is None for v in videos)
    return {
        v["video_id"]: [v["true_label"], *(p["label"] for p in v["predictions"])] for v in videos
    }


@pytest.mark.slow
def test_world_lvlm_chooses_among_clips_shortlist(runner, tmp_path):
    """≥ 90% top-1 with the LVLM re-ranking CLIP's top 5 over 16 frames (the defaults), on 24
    new clips: seed 20262, 224×160 at 12 fps, some moving. The shortlist holds the labels CLIP
    confuses (same colour or shape), so the LVLM must tell them apart on every frame."""
    world = tmp_path / "world"
    synthetic.generate_world(
        world,
        synthetic.SynthConfig(
            trimmed=24,
            untrimmed=0,
            anomaly=0,
            seed=20262,
            width=224,
            height=160,
            fps=12,
            trimmed_duration=(2.0, 4.0),
        ),
    )
    (world / "labels.txt").write_text("\n".join(synthetic.LABELS) + "\n")
    lvlm = classify(runner, world, "--lvlm", "builtin:world-lvlm")
    missed = {v: ranked for v, ranked in lvlm.items() if ranked[1] != ranked[0]}
    assert 1 - len(missed) / len(lvlm) >= 0.9, missed
    # the LVLM re-ranked CLIP's shortlist: the same 5 labels first, in its own order
    clip = classify(runner, world)
    assert all(sorted(lvlm[v][1:6]) == sorted(clip[v][1:6]) for v in lvlm)
