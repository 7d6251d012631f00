"""`zsar doctor`: the library report and the CLI, on the world LVLM (trained: the known-answer
check must separate) and tiny random-init models (the check is reported, not required)."""

from __future__ import annotations

import json

import pytest
import torch

from zsar_cli.backends import load_lvlm
from zsar_cli.cli.app import app
from zsar_cli.stages.doctor import DoctorConfig, diagnose

from .tiny_lvlms import build_tiny_qwen2_5_vl, build_tiny_smolvlm

torch.set_num_threads(2)


def test_world_lvlm_report_and_known_answer(runner):
    result = runner.invoke(app, ["doctor", "--model", "builtin:world-lvlm", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "family: fast_vlm" in out and "device / dtype: cpu / float32" in out
    assert "yes spellings: 'yes', 'Yes', 'YES', ' yes', ' Yes', ' YES'" in out
    assert "tokens / 640x360 frame: 16" in out and "tokens / 4-frame clip: 64" in out
    assert "video input: images (model family fast_vlm has no native video path" in out
    assert "known answer, frame: p_yes shape 0.99" in out and "separates" in out
    native = runner.invoke(
        app,
        ["doctor", "--model", "builtin:world-lvlm", "--device", "cpu", "--video-input", "native"],
    )
    assert native.exit_code == 1 and "--video-input native: model family fast_vlm" in native.output


@pytest.mark.parametrize("builder", [build_tiny_smolvlm, build_tiny_qwen2_5_vl])
def test_random_init_model_report(tmp_path, builder, runner):
    folder = builder(tmp_path / "m")
    lvlm = load_lvlm(f"hf:{folder}", device="cpu", dtype="float32")
    report = diagnose(DoctorConfig(model=f"hf:{folder}"), lvlm=lvlm)
    assert report.video_input == "native" and report.video_note is None
    assert report.revision.startswith("sha256:")
    assert set(report.yes_spellings) == {"yes", "Yes", "YES", " yes", " Yes", " YES"}
    assert all(len(ids) >= 1 for ids in report.letters.values())
    # Per clip: 4 frames as one video (Qwen: 2 temporal patches; SmolVLM: 4 frame images).
    assert report.tokens_per_frame and report.tokens_per_clip
    assert [c.level for c in report.checks] == ["frame", "clip (native)"]
    for check in report.checks:  # random weights: near-chance answers, not separated
        assert 0.0 < check.empty < 1.0 and 0.0 < check.with_shape < 1.0
        assert check.separates == (check.with_shape - check.empty >= 0.2)
    assert not report.ok
    result = runner.invoke(app, ["doctor", "--model", f"hf:{folder}", "--json", "--device", "cpu"])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["ok"] is False and payload["video_input"] == "native"
    # the console wraps long lines where the temporary path's length puts the breaks
    assert "known-answer check failed (frame, clip (native))" in " ".join(result.stderr.split())
