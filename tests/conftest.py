"""Shared fixtures: synthetic clips made with `ffmpeg -f lavfi`, a CliRunner, the world videos."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from zsar_cli.backends import register_scheme

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
    """Skip a test whose optional system part (`slurm`, `ray`) is missing, with the reason; fail
    instead where ZSAR_REQUIRE names it (CI sets ZSAR_REQUIRE=slurm,ray: those tests must run)."""
    if reason is None:
        return
    required = {w.strip() for w in os.environ.get("ZSAR_REQUIRE", "").split(",")}
    if what in required:
        pytest.fail(f"{what} is required here (ZSAR_REQUIRE) but unavailable: {reason}")
    pytest.skip(reason)


def pytest_collection_modifyitems(config, items):
    # ffmpeg is a hard requirement of the product; fail loudly rather than skip silently.
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        raise pytest.UsageError("ffmpeg and ffprobe must be on PATH to run the tests")


def make_clip(
    path: Path,
    duration: float = 2.0,
    rate: str = "25",
    size: str = "160x120",
    extra_input: list[str] | None = None,
    extra_output: list[str] | None = None,
    source: str = "testsrc2",
) -> Path:
    """Generate a short test clip with ffmpeg's lavfi sources (no media committed to the repo)."""
    cmd = [
        "ffmpeg",
        "-nostdin",
        "-loglevel",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"{source}=duration={duration}:rate={rate}:size={size}",
        *(extra_input or []),
        *(extra_output or ["-pix_fmt", "yuv420p"]),
        str(path),
    ]
    subprocess.run(cmd, check=True)
    return path


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
