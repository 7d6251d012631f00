"""Library bars and warnings stay out of zsar's stderr (issue 16.7).

Every LVLM load printed transformers' "Loading weights: 100%|████|" bar to stderr even when it
was a log file, and torch's unpickler warned above zsar's own refusal of the same checkpoint.
The real commands run here in a subprocess with stderr piped (not a terminal), loading the
built-in world models for real: stderr must hold zsar's own status lines and nothing else.
ZSAR_VERBOSE=1 lets the libraries speak again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from zsar_cli.cli.app import app

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    from typer.testing import CliRunner

    from tests.conftest import make_clip

    root = tmp_path_factory.mktemp("quiet")
    clip = make_clip(root / "clip.mp4", duration=1.0)
    out = root / "frames.parquet"
    result = CliRunner().invoke(app, ["extract-frames", str(clip), "-n", "2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    return out


def zsar(*args: object, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ZSAR_")}
    environ.update(PYTHONPATH=str(ROOT), COLUMNS="1000", **env)  # rich wraps at 80 otherwise
    return subprocess.run(
        [sys.executable, "-m", "zsar_cli", *map(str, args)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
    )


def test_an_lvlm_load_prints_only_zsar_lines(frames, tmp_path):
    out = tmp_path / "answers.parquet"
    proc = zsar("query-lvlm", frames, "-m", "builtin:world-lvlm", "--question", "Is it?", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [f"2 answer rows from 1 videos → {out}"], proc.stderr


def test_an_open_clip_load_prints_only_zsar_lines(frames, tmp_path):
    out = tmp_path / "emb.parquet"
    proc = zsar("encode", frames, "-m", "builtin:world-clip", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [f"2 frame rows from 1 videos → {out}"], proc.stderr


def test_quiet_unless_asked(monkeypatch):
    from transformers.utils import logging as hf_logging

    from zsar_cli.quiet import quiet_libraries

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()
    try:
        monkeypatch.delenv("ZSAR_VERBOSE", raising=False)
        with quiet_libraries():
            assert not hf_logging.is_progress_bar_enabled()
            with warnings.catch_warnings(record=True) as caught:
                warnings.warn("a library warning", UserWarning, stacklevel=1)
            assert caught == []
        assert hf_logging.is_progress_bar_enabled()  # put back as it was
        monkeypatch.setenv("ZSAR_VERBOSE", "1")
        with quiet_libraries():
            assert hf_logging.is_progress_bar_enabled()
    finally:
        if not was_on:
            hf_logging.disable_progress_bar()
