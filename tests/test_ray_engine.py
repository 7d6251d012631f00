"""The optional Ray Data engine (`--engine ray`, issues 8 and 18): same rows and provenance as
local, for extract-frames, encode, query-lvlm, select-tokens and localize.

Runs on a local Ray instance (2 CPUs, started once for the module). Ray is an optional extra, so
every test that needs it skips when it is not installed (CI installs it and sets
ZSAR_REQUIRE=ray, which turns that skip into a failure); the option checks and the "install
zsar[ray]" message are tested either way.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tests.conftest import make_clip, require
from zsar_cli.artifacts import read_artifact
from zsar_cli.cli.app import app
from zsar_cli.errors import ConfigError, ModelError
from zsar_cli.sharding import Shard
from zsar_cli.stages import encode as encode_stage
from zsar_cli.stages import extract_frames as extract_stage
from zsar_cli.stages.encode_config import EncodeConfig
from zsar_cli.stages.extract_frames_config import ExtractConfig

MODEL = "builtin:world-clip"  # shipped with the package: no network, real open_clip code path
FRAMES = ExtractConfig(num_frames=3, size=48)
ENCODE = EncodeConfig(model=MODEL, device="cpu")


@pytest.fixture(scope="module")
def ray_local():
    try:
        import ray
        import ray.data
    except ImportError:
        require("ray", "Ray is not installed (pip install 'zsar[ray]')")
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Three clips of different lengths and a file that is not a video (→ an error row)."""
    root = tmp_path_factory.mktemp("ray-clips")
    clips = [make_clip(root / f"v{i}.mp4", duration=1.0 + 0.5 * i, rate="20") for i in range(3)]
    broken = root / "broken.mp4"
    broken.write_bytes(b"not a video")
    return [str(clips[0]), str(broken), str(clips[1]), str(clips[2])]


@pytest.fixture(scope="module")
def local_frames(videos, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "frames.parquet"
    extract_stage.run(videos, out, FRAMES)
    return out


def same_artifact(a_path, b_path, kind):
    a, b = read_artifact(a_path, kind), read_artifact(b_path, kind)
    assert (a.meta.kind, a.meta.config, a.meta.upstream) == (
        b.meta.kind,
        b.meta.config,
        b.meta.upstream,
    )
    assert a.meta.extra == b.meta.extra
    assert a.cache_key == b.cache_key
    assert a.table.schema.remove_metadata() == b.table.schema.remove_metadata()
    return a.table, b.table


def assert_embeddings_equal(a, b):
    keys = ["video_id", "path", "label", "frame_index", "timestamp", "segment", "error"]
    assert a.select(keys).to_pylist() == b.select(keys).to_pylist()
    ea, eb = a.column("embedding").to_pylist(), b.column("embedding").to_pylist()
    assert [x is None for x in ea] == [x is None for x in eb]
    valid = [i for i, x in enumerate(ea) if x is not None]
    np.testing.assert_allclose(
        np.array([ea[i] for i in valid], np.float32),
        np.array([eb[i] for i in valid], np.float32),
        atol=1e-3,
    )


def test_extract_with_ray_equals_local_row_for_row(ray_local, videos, local_frames, tmp_path):
    from zsar_cli.engines.ray_engine import extract_with_ray

    out = tmp_path / "ray-frames.parquet"
    summary = extract_with_ray(videos, out, FRAMES)
    local, ray_table = same_artifact(local_frames, out, "frames")
    assert ray_table.equals(local)  # images included, byte for byte
    # In input order, the broken file's error row in its place.
    order = list(dict.fromkeys(ray_table.column("video_id").to_pylist()))
    assert order == ["v0", "broken", "v1", "v2"]
    errors = dict(
        zip(ray_table["video_id"].to_pylist(), ray_table["error"].to_pylist(), strict=True)
    )
    assert "broken.mp4" in errors["broken"]
    assert (summary.videos, summary.failed, summary.frames) == (4, 1, 9)
    assert [vid for vid, _ in summary.errors] == ["broken"]
    # Same cache key as the local engine: a rerun (either engine) finds it up to date.
    assert extract_with_ray(videos, out, FRAMES).skipped
    assert extract_stage.run(videos, out, FRAMES).skipped


def test_extract_with_ray_streams_rate_based_chunks(ray_local, videos, tmp_path):
    """--fps over more frames than one chunk: several blocks per video, order kept."""
    from zsar_cli.engines.ray_engine import extract_with_ray

    config = ExtractConfig(all_frames=True, size=32)
    extract_stage.run(videos[2:], tmp_path / "local.parquet", config)
    extract_with_ray(videos[2:], tmp_path / "ray.parquet", config)
    local, ray_table = same_artifact(tmp_path / "local.parquet", tmp_path / "ray.parquet", "frames")
    assert ray_table.num_rows == 30 + 40 > extract_stage.CHUNK_FRAMES
    assert ray_table.equals(local)


def test_encode_with_ray_equals_local_on_a_folder_of_parts(ray_local, videos, tmp_path):
    """Parts read in order across files; error rows carried; same model metadata."""
    from zsar_cli.engines.ray_engine import encode_with_ray

    parts = tmp_path / "frames"
    for i in range(2):
        extract_stage.run(videos, parts, FRAMES, shard=Shard(i, 2))
    encode_stage.run(parts, tmp_path / "local.parquet", ENCODE)
    summary = encode_with_ray(parts, tmp_path / "ray.parquet", ENCODE)
    local, ray_table = same_artifact(
        tmp_path / "local.parquet", tmp_path / "ray.parquet", "embeddings"
    )
    assert_embeddings_equal(local, ray_table)
    assert ray_table.column("video_id").to_pylist()[:4] == ["v0"] * 3 + ["broken"]
    assert ray_table.column("embedding")[3].as_py() is None
    assert "broken.mp4" in ray_table.column("error")[3].as_py()
    # Embeddings are real unit vectors of the model's dimension.
    emb = np.array([e for e in ray_table.column("embedding").to_pylist() if e], np.float32)
    assert emb.shape == (9, 64)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=2e-3)
    assert (summary.videos, summary.failed, summary.frames) == (4, 1, 10)
    assert encode_with_ray(parts, tmp_path / "ray.parquet", ENCODE).skipped


@pytest.mark.slow  # 20-35 s on 2 cores; the library tests above cover the same path
def test_encode_with_ray_bad_model_is_one_clear_error(ray_local, local_frames, tmp_path):
    from zsar_cli.engines.ray_engine import encode_with_ray

    config = EncodeConfig(model="openclip:no-such-arch@/nowhere/model.safetensors", device="cpu")
    with pytest.raises(ModelError) as info:
        encode_with_ray(local_frames, tmp_path / "emb.parquet", config)
    assert str(info.value) == "checkpoint /nowhere/model.safetensors: no such file"
    assert not (tmp_path / "emb.parquet").exists()


@pytest.mark.slow  # 20-35 s on 2 cores; the library tests above cover the same path
def test_cli_engine_ray_matches_local(ray_local, videos, local_frames, tmp_path, runner):
    frames = tmp_path / "frames.parquet"
    result = runner.invoke(
        app,
        [
            "extract-frames",
            *videos,
            "-n",
            "3",
            "--size",
            "48",
            "-o",
            str(frames),
            "--engine",
            "ray",
        ],
    )
    assert result.exit_code == 0, result.output  # one failed video of four: a warning, not exit 1
    assert "9 frames from 3/4 videos" in result.output
    assert "failed: broken" in result.output
    local, ray_table = same_artifact(local_frames, frames, "frames")
    assert ray_table.equals(local)

    emb = tmp_path / "emb.parquet"
    args = ["encode", str(frames), "-o", str(emb), "-m", MODEL, "--device", "cpu"]
    result = runner.invoke(app, [*args, "--engine", "ray"])
    assert result.exit_code == 0, result.output
    assert "10 frame rows from 4 videos" in result.output
    result = runner.invoke(app, [*args, "--engine", "local"])
    assert result.exit_code == 0 and "up to date" in result.output


def test_cli_engine_option_checks(runner, local_frames, tmp_path):
    out = str(tmp_path / "x.parquet")
    result = runner.invoke(
        app, ["encode", str(local_frames), "-o", out, "--engine", "ray", "--shard", "0/2"]
    )
    assert result.exit_code == 1 and "drop --shard" in result.output
    result = runner.invoke(app, ["encode", str(local_frames), "-o", out, "--engine", "spark"])
    assert result.exit_code == 2 and "'spark' is not one of 'local', 'ray'" in result.output
    result = runner.invoke(
        app, ["extract-frames", str(local_frames), "-o", out, "--ray-address", "auto"]
    )
    assert result.exit_code == 1 and "--ray-address goes with --engine ray" in result.output
    # Ray reads files; a pipe on stdin is refused before Ray is even needed.
    result = runner.invoke(app, ["encode", "-", "-o", out, "--engine", "ray"], input=b"")
    assert result.exit_code == 1 and "not - (stdin)" in result.output


def test_missing_ray_says_how_to_install(runner, local_frames, tmp_path, monkeypatch):
    """What a user without the extra sees (ray made unimportable for this test)."""
    from zsar_cli.engines.ray_engine import require_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ConfigError, match=r"pip install 'zsar\[ray\]'"):
        require_ray()
    out = str(tmp_path / "x.parquet")
    result = runner.invoke(app, ["encode", str(local_frames), "-o", out, "--engine", "ray"])
    assert result.exit_code == 1
    assert "zsar[ray]" in result.output and "Traceback" not in result.output


# ---------------------------------------------------------------------------------------------
# Hostile input through the Ray engine (issue 16): the same one-line errors as the local engine


def _one_line(result, *names: str) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "internal error" not in lines[0] and "Traceback" not in result.output
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


@pytest.mark.parametrize("damage", ["page", "footer"])
def test_ray_damaged_frames_are_one_line_naming_the_file(
    ray_local, runner, local_frames, tmp_path, damage
):
    from tests.test_hostile_inputs import corrupt_footer, corrupt_page

    bad = tmp_path / "in" / "frames.parquet"
    bad.parent.mkdir()
    (corrupt_page if damage == "page" else corrupt_footer)(local_frames, bad)
    out = tmp_path / "out" / "emb.parquet"
    args = ["encode", str(bad), "-o", str(out), "-m", MODEL, "--device", "cpu", "--engine", "ray"]
    _one_line(runner.invoke(app, args), str(bad))
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_ray_unusable_outputs_are_refused_before_work(
    ray_local, runner, videos, local_frames, tmp_path, monkeypatch
):
    """An output under a file was refused only after every frame was encoded."""

    def no_work(*_args, **_kwargs):
        raise AssertionError("Ray work started for an output that cannot be written")

    monkeypatch.setattr(ray_local.data, "from_items", no_work)
    monkeypatch.setattr(ray_local, "remote", no_work)
    ray_args = ["--engine", "ray"]
    result = runner.invoke(app, ["encode", str(local_frames), "-o", "", *ray_args])
    _one_line(result, "-o ''")
    result = runner.invoke(app, ["extract-frames", videos[0], "-n", "1", "-o", "", *ray_args])
    _one_line(result, "-o ''")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "emb.parquet"
    result = runner.invoke(
        app, ["encode", str(local_frames), "-o", str(out), "-m", MODEL, *ray_args]
    )
    assert "is a file, not a folder" in _one_line(result, str(blocker))
    result = runner.invoke(app, ["extract-frames", *videos, "--fps", "inf", "-o", "x", *ray_args])
    _one_line(result, "--fps")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.slow
def test_ray_run_prints_only_zsar_lines(local_frames, tmp_path):
    """Ray's own start-up lines, Ray Data's plans and its C++ core's warning about actor
    arguments (on stderr, not a terminal) stay out of zsar's stderr (issue 16.7)."""
    import os
    import subprocess
    from pathlib import Path

    pytest.importorskip("ray")
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "emb.parquet"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZSAR_", "RAY_ADDRESS"))}
    env.update(PYTHONPATH=str(root), COLUMNS="1000")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "zsar_cli",
            "encode",
            str(local_frames),
            "-o",
            str(out),
            "-m",
            MODEL,
            "--device",
            "cpu",
            "--engine",
            "ray",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        f"10 frame rows from 4 videos → {out}",
        "warning: 1 of 4 videos failed (error rows written)",  # the file that is not a video
    ], proc.stderr
