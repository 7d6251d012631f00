"""The Ray engine for the model stages (issue 18): query-lvlm and select-tokens on actors that
each load the model once, and localize in Ray tasks over blocks of videos, with output equal to
the local engine's row for row and the same cache key (so either engine finds the other's
output up to date, and resumes the other's checkpoints).

Local Ray instance with 2 CPUs (module scope); the world models; skipped without Ray unless
ZSAR_REQUIRE names it (CI).
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from tests.conftest import make_clip, require
from zsar_cli.artifacts import read_artifact
from zsar_cli.cli.app import app
from zsar_cli.engines import Engine
from zsar_cli.errors import ConfigError
from zsar_cli.stages import extract_frames as extract_stage
from zsar_cli.stages import query_lvlm as query_stage
from zsar_cli.stages import select_tokens as select_stage
from zsar_cli.stages.extract_frames_config import ExtractConfig
from zsar_cli.stages.query_lvlm_config import QueryConfig
from zsar_cli.stages.select_tokens_config import SelectTokensConfig

LVLM, CLIP = "builtin:world-lvlm", "builtin:world-clip"
RAY = Engine("ray")


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
def frames(tmp_path_factory):
    """Three clips in two segments of two frames each, and a broken file (error rows); written
    as two part files, so actors read videos from several files."""
    root = tmp_path_factory.mktemp("ray-model-clips")
    clips = [make_clip(root / f"v{i}.mp4", duration=1.0 + 0.5 * i, rate="10") for i in range(3)]
    broken = root / "broken.mp4"
    broken.write_bytes(b"not a video")
    videos = [str(clips[0]), str(broken), str(clips[1]), str(clips[2])]
    config = ExtractConfig(segments=2, frames_per_segment=2, size=64)
    from zsar_cli.sharding import Shard

    for i in range(2):
        extract_stage.run(videos, root / "frames", config, shard=Shard(i, 2))
    return root / "frames"


def same(a_path, b_path, kind):
    a, b = read_artifact(a_path, kind), read_artifact(b_path, kind)
    assert (a.meta.config, a.meta.upstream, a.meta.extra) == (
        b.meta.config,
        b.meta.upstream,
        b.meta.extra,
    )
    assert a.cache_key == b.cache_key
    return a.table, b.table


def assert_close_rows(a, b, exact, close, atol=1e-6):
    assert a.num_rows == b.num_rows > 0
    assert a.select(exact).to_pylist() == b.select(exact).to_pylist()
    for column in close:
        x, y = a.column(column).to_pylist(), b.column(column).to_pylist()
        assert [v is None for v in x] == [v is None for v in y]
        keep = [i for i, v in enumerate(x) if v is not None]
        np.testing.assert_allclose(
            np.array([x[i] for i in keep], np.float64),
            np.array([y[i] for i in keep], np.float64),
            atol=atol,
        )


def test_query_lvlm_on_ray_actors_equals_local(ray_local, frames, tmp_path):
    config = QueryConfig(model=LVLM, question="Is there any object in this frame?", device="cpu")
    local = query_stage.run(frames, tmp_path / "local.parquet", config)
    summary = query_stage.run(frames, tmp_path / "ray.parquet", config, engine=RAY)
    a, b = same(tmp_path / "local.parquet", tmp_path / "ray.parquet", "answers")
    exact = ["video_id", "frame_index", "timestamp", "segment", "label", "query_kind", "error"]
    assert_close_rows(a, b, exact, ["p_yes", "yes_mass", "no_mass"])
    assert "broken.mp4" in b.column("error")[4].as_py()
    assert (summary.videos, summary.failed, summary.rows) == (
        local.videos,
        local.failed,
        local.rows,
    )
    assert summary.cache_key == local.cache_key
    # Either engine finds the other's output up to date.
    assert query_stage.run(frames, tmp_path / "ray.parquet", config).skipped
    assert query_stage.run(frames, tmp_path / "local.parquet", config, engine=RAY).skipped


def test_model_that_cannot_load_on_an_actor_is_one_clear_error(ray_local, frames, tmp_path):
    from zsar_cli.errors import ModelError

    config = QueryConfig(model="hf:/nowhere/model", question="Is there?", device="cpu")
    with pytest.raises(ModelError, match=r"^hf:/nowhere/model: .*no such"):
        query_stage.run(frames, tmp_path / "x.parquet", config, engine=RAY)
    assert not (tmp_path / "x.parquet").exists()


@pytest.mark.slow  # ~30 s on 2 cores; the parity tests are the default suite's
def test_query_lvlm_on_ray_resumes_local_checkpoints(ray_local, frames, tmp_path):
    """A local run killed after two videos: the Ray run does only the other two."""
    config = QueryConfig(model=LVLM, question="Is there a square?", mode="yesno", device="cpu")
    seen: list[str] = []

    def stop_after_two(video_id: str) -> None:
        seen.append(video_id)
        if len(seen) == 2:
            raise KeyboardInterrupt

    out = tmp_path / "answers.parquet"
    with pytest.raises(KeyboardInterrupt):
        query_stage.run(frames, out, config, on_video=stop_after_two)
    summary = query_stage.run(frames, out, config, engine=RAY)
    assert summary.resumed_videos == 2 and summary.videos == 4
    query_stage.run(frames, tmp_path / "ref.parquet", config)
    a, b = same(tmp_path / "ref.parquet", out, "answers")
    assert_close_rows(a, b, ["video_id", "frame_index", "error"], ["p_yes"])


def test_select_tokens_on_ray_actors_equals_local(ray_local, frames, tmp_path):
    config = SelectTokensConfig(
        model=LVLM, question="Is there any object in this frame?", budget=8, device="cpu"
    )
    local = select_stage.run(frames, tmp_path / "local.parquet", config)
    summary = select_stage.run(frames, tmp_path / "ray.parquet", config, engine=RAY)
    a, b = same(tmp_path / "local.parquet", tmp_path / "ray.parquet", "tokens")
    exact = ["video_id", "segment", "frame_index", "token_index", "label", "error"]
    assert_close_rows(a, b, exact, ["score"])
    ea = [e for e in a.column("embedding").to_pylist() if e is not None]
    eb = [e for e in b.column("embedding").to_pylist() if e is not None]
    np.testing.assert_allclose(np.array(ea, np.float32), np.array(eb, np.float32), atol=1e-3)
    assert b.num_rows == 3 * 8 + 1  # three videos × budget, one error row
    assert (summary.videos, summary.failed) == (local.videos, local.failed) == (4, 1)
    # The metadata only the actors' loaded model knows (its spec under the built-in name, the
    # digest of the built-in's files) is the local run's.
    ray_extra = read_artifact(tmp_path / "ray.parquet").meta.extra
    local_extra = read_artifact(tmp_path / "local.parquet").meta.extra
    assert ray_extra["model_spec"] == local_extra["model_spec"] == LVLM
    assert ray_extra["model_sha256"] == local_extra["model_sha256"]
    assert len(local_extra["model_sha256"]) > 16


@pytest.fixture(scope="module")
def zeal_inputs(frames, tmp_path_factory):
    """Embeddings, description text embeddings and start/end answers of the clips."""
    from zsar_cli.stages import encode as encode_stage
    from zsar_cli.stages.encode_config import EncodeConfig, PromptConfig, TextEncodeConfig

    root = tmp_path_factory.mktemp("ray-zeal")
    descriptions = root / "desc.json"
    descriptions.write_text(
        json.dumps(
            [
                {
                    "label": label,
                    "description": f"{label} on a plain gray background",
                    "descriptors": [label],
                    "start_question": f"Does {label} appear with a white rim in this frame?",
                    "end_question": f"Is only the outline of {label} left in this frame?",
                }
                for label in ("a red circle", "a blue square", "a green triangle")
            ]
        )
    )
    labels = root / "labels.txt"
    labels.write_text("a red circle\na blue square\na green triangle\n")
    encode_stage.run(frames, root / "emb.parquet", EncodeConfig(model=CLIP, device="cpu"))
    encode_stage.run_text(
        labels,
        root / "text.parquet",
        TextEncodeConfig(
            model=CLIP,
            device="cpu",
            prompts=PromptConfig(templates="none", descriptions=str(descriptions)),
        ),
    )
    query_stage.run(
        frames,
        root / "answers.parquet",
        QueryConfig(model=LVLM, descriptions_file=str(descriptions), device="cpu"),
    )
    return {k: str(root / f"{k}.parquet") for k in ("emb", "text", "answers")}


@pytest.mark.parametrize("method", ["zeal", "clip"])
def test_localize_on_ray_tasks_equals_local(ray_local, zeal_inputs, tmp_path, method):
    from zsar_cli.engines.ray_models import localize_in_blocks
    from zsar_cli.stages import localize as localize_stage
    from zsar_cli.stages.localize_config import LocalizeConfig

    # Low thresholds so that these few short clips give proposals to compare.
    config = LocalizeConfig(method=method, min_mean_score=0.0, min_frames=1)
    inputs = {"embeddings": zeal_inputs["emb"], "text": zeal_inputs["text"]}
    if method == "zeal":
        inputs["answers"] = zeal_inputs["answers"]
    local = localize_stage.run(config, **inputs, output=str(tmp_path / "local.parquet"))
    result = localize_stage.run(config, **inputs, output=str(tmp_path / "ray.parquet"), engine=RAY)
    a, b = same(tmp_path / "local.parquet", tmp_path / "ray.parquet", "intervals")
    assert a.equals(b)
    assert (result.videos, result.failed, result.notes) == (local.videos, local.failed, local.notes)
    assert result.labels_used == local.labels_used
    # Blocks of one video each: still the same result, notes in the same order.
    from zsar_cli.stages.localize_inputs import read_frames

    video_frames, _ = read_frames(zeal_inputs["emb"])
    labels, emb, _ = localize_stage.read_text(zeal_inputs["text"], prefer=("description",))
    one_each = localize_in_blocks(
        RAY,
        localize_stage.localize_clip,
        video_frames,
        (labels, emb, config, None, 100.0),
        blocks=4,
    )
    whole = localize_stage.localize_clip(video_frames, labels, emb, config, None, 100.0)
    assert one_each.intervals.equals(whole.intervals) and one_each.notes == whole.notes


def test_model_actors_ask_for_one_gpu_each_where_the_cluster_has_gpus():
    """What an actor reserves (no GPU here: Ray's view of a GPU cluster is stubbed)."""
    from zsar_cli.engines.ray_models import RayExecutor

    class Cluster:
        def __init__(self, gpus):
            self.gpus = gpus

        def cluster_resources(self):
            return {"CPU": 16.0, "GPU": self.gpus}

    config = QueryConfig(model=LVLM, question="q?", device="auto")
    task = query_stage.AnswerTask(config.validated(), (), (), "jpeg")
    served = replace(task, config=replace(task.config, model="openai:http://127.0.0.1:9/v1#m"))
    for gpus, want in ((4.0, 1.0), (0.0, None)):
        executor = RayExecutor(Engine("ray"))
        executor._ray = Cluster(gpus)
        placed, resources = executor._placed(task)
        assert resources == {"num_cpus": 1.0, "num_gpus": want}
        assert placed.config.device == ("cuda" if want else "cpu")
        _, resources = executor._placed(served)  # a served model needs no GPU of its own
        assert resources["num_gpus"] is None
    executor = RayExecutor(Engine("ray"))
    executor._ray = Cluster(0.0)
    with pytest.raises(ConfigError, match="no GPUs"):
        executor._placed(replace(task, config=replace(task.config, device="cuda")))


@pytest.mark.slow  # ~30 s on 2 cores; the parity tests are the default suite's
def test_cli_engine_ray_for_query_select_localize(ray_local, frames, zeal_inputs, tmp_path, runner):
    args = [
        "query-lvlm",
        str(frames),
        "-m",
        LVLM,
        "--device",
        "cpu",
        "--question",
        "Is there a circle?",
    ]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "a.parquet"), "--engine", "ray"])
    assert result.exit_code == 0, result.output
    assert "answer rows from 4 videos" in result.output
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "a.parquet")])
    assert result.exit_code == 0 and "up to date" in result.output
    result = runner.invoke(
        app, [*args, "-o", str(tmp_path / "p"), "--engine", "ray", "--shard", "0/2"]
    )
    assert result.exit_code == 1 and "drop --shard" in result.output
    result = runner.invoke(
        app,
        [
            "localize",
            "--method",
            "zeal",
            "--embeddings",
            zeal_inputs["emb"],
            "--text",
            zeal_inputs["text"],
            "--answers",
            zeal_inputs["answers"],
            "-o",
            str(tmp_path / "i.parquet"),
            "--engine",
            "ray",
        ],
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(
        app,
        [
            "localize",
            "--method",
            "anomaly",
            "--embeddings",
            zeal_inputs["emb"],
            "--text",
            zeal_inputs["text"],
            "-o",
            str(tmp_path / "f.parquet"),
            "--engine",
            "ray",
        ],
    )
    assert result.exit_code == 1 and "run it with the local engine" in result.output
