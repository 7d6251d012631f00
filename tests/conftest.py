"""Shared fixtures: synthetic clips (tests/clips.py: lavfi sources through PyAV), a CliRunner, the
world videos, and `require`/the `ffmpeg` marker for tests that need a program zsar does not."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.clips import make_clip as make_clip
from zsar_cli.backends import register_scheme
from zsar_cli.video import DECODERS as ZSAR_DECODERS

# The deterministic fake backend (tests/fakes.py) for every test. In this process only: the
# package never registers it, and a subprocess (`python -m zsar_cli ...`) does not know `fake:`.
register_scheme("encoder", "fake", "tests.fakes:load_fake_encoder")
register_scheme("lvlm", "fake", "tests.fakes:load_fake_lvlm")

# The real clips beside the checkout (../shared/realvideos), or where ZSAR_REALVIDEOS points
# (a worktree elsewhere).
REALVIDEOS = Path(
    os.environ.get("ZSAR_REALVIDEOS")
    or Path(__file__).resolve().parents[2] / "shared" / "realvideos"
)

os.environ.setdefault("ZSAR_NO_PROGRESS", "1")


def require(what: str, reason: str | None) -> None:
    """Skip a test whose optional system part (`slurm`, `ray`, `ffmpeg`) is missing, with the
    reason; fail instead where ZSAR_REQUIRE names it (CI sets ZSAR_REQUIRE=slurm,ray: those tests
    must run)."""
    if reason is None:
        return
    required = {w.strip() for w in os.environ.get("ZSAR_REQUIRE", "").split(",")}
    if what in required:
        pytest.fail(f"{what} is required here (ZSAR_REQUIRE) but unavailable: {reason}")
    pytest.skip(reason)


def missing_ffmpeg() -> str | None:
    """Why the ffmpeg/ffprobe programs cannot run here, or None. zsar decodes with PyAV's bundled
    FFmpeg; the programs are for `--decoder ffmpeg` and for tests that use them as a reference."""
    missing = [name for name in ("ffmpeg", "ffprobe") if shutil.which(name) is None]
    return f"{' and '.join(missing)} not on PATH" if missing else None


def needs_ffmpeg() -> None:
    """Skip (fail with ZSAR_REQUIRE=ffmpeg) where the ffmpeg/ffprobe programs are missing."""
    require("ffmpeg", missing_ffmpeg())


# zsar's decoders to parametrize a test over: the ffmpeg case needs the programs, the others run
# anywhere (the ids stay "pyav", "ffmpeg").
DECODERS = [
    pytest.param(d, marks=pytest.mark.ffmpeg) if d == "ffmpeg" else d for d in ZSAR_DECODERS
]


@pytest.hookimpl(tryfirst=True)  # before the test's fixtures are set up: none built to skip
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("ffmpeg") is not None:
        needs_ffmpeg()


@pytest.fixture
def clip_factory(tmp_path):
    def factory(name: str = "clip.mp4", **kwargs) -> Path:
        return make_clip(tmp_path / name, **kwargs)

    return factory


@pytest.fixture
def runner():
    from typer.testing import CliRunner

    return CliRunner()


@pytest.fixture(scope="session")
def realvideos() -> Path:
    if not REALVIDEOS.is_dir():
        pytest.skip("../shared/realvideos not present")
    return REALVIDEOS
