"""The Slurm scripts under a real Slurm (issue 18): `make slurm-pipeline` on a one-node cluster.

A one-node cluster on localhost (tests/slurm_cluster.py: Debian's slurmctld, slurmd and munge,
started here as root and stopped by pid at the end) runs `make slurm-pipeline SHARDS=3` on
world videos: real `sbatch --array` jobs chained with `afterok`, every stage sharded with
`--shard auto`. The merged outputs must equal an unsharded run of the same commands row for row.
Then one task of a query-lvlm array is cancelled with `scancel` once it has checkpointed a video,
resubmitted alone (`TASKS=1`), and must resume from that checkpoint and complete.

Where Slurm cannot run (not installed, not root) the module skips with the reason; CI sets
ZSAR_REQUIRE=slurm, which turns that skip into a failure.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require
from tests.slurm_cluster import LocalSlurm, unavailable
from zsar_cli.artifacts import read_artifact
from zsar_cli.cli.app import app

pytestmark = pytest.mark.slurm

REPO = Path(__file__).resolve().parents[1]
SHARDS = 3
CLIP, LVLM = "builtin:world-clip", "builtin:world-lvlm"
FPS, SIZE = "1", "96"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    require("slurm", unavailable())
    if shutil.which("make") is None:
        require("slurm", "make is not installed")
    cluster = LocalSlurm(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Six short untrimmed world videos; the descriptions of three of their labels (few LVLM
    questions), and of six (more work per video, for the cancellation test)."""
    from zsar_cli.synthetic import SynthConfig, generate_world

    root = tmp_path_factory.mktemp("world")
    generate_world(
        root / "world",
        SynthConfig(
            trimmed=0,
            untrimmed=6,
            anomaly=0,
            seed=5,
            width=160,
            height=120,
            fps=10,
            untrimmed_duration=(4.0, 6.0),
            instances=(1, 1),
            instance_duration=(2.0, 3.0),
            phase_seconds=1.0,
        ),
    )
    world = root / "world"
    truth = json.loads((world / "untrimmed" / "activitynet.json").read_text())["database"]
    seen = [a["label"] for v in truth.values() for a in v["annotations"]]
    labels = list(dict.fromkeys(seen))[:3]
    everything = json.loads((world / "descriptions.json").read_text())
    (root / "labels3.txt").write_text("\n".join(labels) + "\n")
    (root / "desc3.json").write_text(json.dumps([d for d in everything if d["label"] in labels]))
    (root / "desc6.json").write_text(json.dumps(everything[:6]))
    return {
        "videos": world / "untrimmed" / "list.csv",
        "labels": root / "labels3.txt",
        "descriptions": root / "desc3.json",
        "more_descriptions": root / "desc6.json",
    }


def job_env(tmp: Path, **extra: str) -> dict[str, str]:
    """What the jobs see (sbatch --export=ALL): this checkout's zsar first on PATH, small
    resource requests (a 2-CPU node), the world models on the CPU."""
    import os

    shim = tmp / "bin"
    shim.mkdir(exist_ok=True)
    (shim / "zsar").write_text(f'#!/bin/sh\nexec {sys.executable} -m zsar_cli "$@"\n')
    (shim / "zsar").chmod(0o755)
    env = dict(os.environ)
    env.update(
        PATH=f"{shim}:{env.get('PATH', '')}",
        PYTHONPATH=f"{REPO}:{env.get('PYTHONPATH', '')}".rstrip(":"),
        ZSAR_NO_PROGRESS="1",
        HF_HUB_OFFLINE="1",
        SBATCH_ARGS="--cpus-per-task=1 --mem=400M --time=00:20:00",
        GPU_SBATCH_ARGS="--gres=none",  # the scripts ask for a GPU; this node has none
        CLIP_MODEL=CLIP,
        LVLM_MODEL=LVLM,
        DEVICE="cpu",
        PRECISION="fp32",
        FPS=FPS,
        SIZE=SIZE,
    )
    env.update(extra)
    return env


def make(cluster: LocalSlurm, env: dict[str, str], *args: str) -> str:
    done = cluster.run(
        ["make", "-s", "--no-print-directory", "-C", str(REPO), *args], env=env, timeout=120
    )
    return done.stdout


def cli(runner, *args: str) -> None:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output


def unsharded(runner, world, out: Path, descriptions: Path) -> dict[str, Path]:
    """The same commands as the .sbatch scripts, without --shard, in this process."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"{k}.parquet" for k in ("frames", "emb", "text", "answers", "intervals")}
    cli(runner, "extract-frames", str(world["videos"]), "--fps", FPS, "--size", SIZE,
        "--workers", "1", "-o", str(paths["frames"]))  # fmt: skip
    cli(runner, "encode", str(paths["frames"]), "-m", CLIP, "--device", "cpu",
        "--precision", "fp32", "-o", str(paths["emb"]))  # fmt: skip
    cli(runner, "encode-text", "--labels", str(world["labels"]), "--templates", "none",
        "--descriptions", str(descriptions), "-m", CLIP, "--device", "cpu",
        "-o", str(paths["text"]))  # fmt: skip
    cli(runner, "query-lvlm", str(paths["frames"]), "--descriptions", str(descriptions),
        "-m", LVLM, "--device", "cpu", "-o", str(paths["answers"]))  # fmt: skip
    cli(runner, "localize", "--method", "zeal", "--embeddings", str(paths["emb"]),
        "--text", str(paths["text"]), "--answers", str(paths["answers"]),
        "-o", str(paths["intervals"]))  # fmt: skip
    return paths


def assert_rows_equal(a, b, exact, close=(), atol=1e-6):
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


def job_times(cluster: LocalSlurm, job: str) -> tuple[float, float]:
    """(earliest start, latest end) over a job's tasks, in epoch seconds."""
    done = cluster.run(["scontrol", "show", "job", "-o", job])
    starts, ends = [], []
    for line in done.stdout.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        starts.append(time.mktime(time.strptime(fields["StartTime"], "%Y-%m-%dT%H:%M:%S")))
        ends.append(time.mktime(time.strptime(fields["EndTime"], "%Y-%m-%dT%H:%M:%S")))
    return min(starts), max(ends)


@pytest.fixture(scope="module")
def pipeline(cluster, world, tmp_path_factory):
    """`make slurm-pipeline SHARDS=3` through real sbatch arrays, waited for."""
    tmp = tmp_path_factory.mktemp("pipeline")
    work = tmp / "work"
    env = job_env(tmp, DESCRIPTIONS=str(world["descriptions"]))
    args = [f"SHARDS={SHARDS}", f"VIDEOS={world['videos']}", f"LABELS={world['labels']}"]
    out = make(cluster, env, "slurm-pipeline", *args, f"WORK={work}")
    jobs = dict(re.findall(r"([\w-]+)=(\d+)", out.splitlines()[-1]))
    assert set(jobs) == {"extract", "describe", "encode", "query-lvlm", "localize", "merge"}, out
    states = cluster.wait(jobs.values(), timeout=900)
    return {"work": work, "jobs": jobs, "states": states, "env": env, "tmp": tmp}


def test_slurm_pipeline_equals_unsharded_run(pipeline, cluster, world, runner, tmp_path):
    jobs, states, work = pipeline["jobs"], pipeline["states"], pipeline["work"]
    logs = "\n".join(p.read_text()[-600:] for p in sorted((work / "logs").glob("*.out")))
    assert all(s == "COMPLETED" for s in states.values()), f"{states}\n{logs}"
    # Real arrays: one task per shard for every sharded stage.
    for stage in ("extract", "encode", "query-lvlm", "localize"):
        assert {f"{jobs[stage]}_{i}" for i in range(SHARDS)} <= set(states), (stage, states)
    # afterok: no stage started before the stages it depends on had ended.
    times = {stage: job_times(cluster, job) for stage, job in jobs.items()}
    for stage, needs in (
        ("encode", ["extract"]),
        ("query-lvlm", ["extract", "describe"]),
        ("localize", ["encode", "query-lvlm"]),
        ("merge", ["localize"]),
    ):
        assert times[stage][0] >= max(times[n][1] for n in needs), (stage, times)
    for folder in ("frames", "emb", "answers", "intervals"):
        parts = sorted(p.name for p in (work / folder).glob("part-*.parquet"))
        assert parts == [f"part-{i:05d}-of-{SHARDS:05d}.parquet" for i in range(SHARDS)]

    ref = unsharded(runner, world, tmp_path / "ref", world["descriptions"])
    frames = read_artifact(work / "frames", "frames").table
    assert frames.equals(read_artifact(ref["frames"], "frames").table)  # images byte for byte
    keys = ["video_id", "frame_index", "timestamp", "error"]
    emb = read_artifact(work / "emb", "embeddings").table
    assert_rows_equal(emb, read_artifact(ref["emb"]).table, keys, ["embedding"], atol=1e-3)
    answers = read_artifact(work / "answers.parquet", "answers").table  # merged by the merge job
    ref_answers = read_artifact(ref["answers"]).table
    exact = ["video_id", "frame_index", "label", "query_kind", "question", "error"]
    assert_rows_equal(answers, ref_answers, exact, ["p_yes", "yes_mass", "no_mass"])
    intervals = read_artifact(work / "intervals.parquet", "intervals").table
    ref_intervals = read_artifact(ref["intervals"]).table
    exact = ["video_id", "label", "frame_start", "frame_end"]
    assert_rows_equal(intervals, ref_intervals, exact, ["t_start", "t_end", "score"])


@pytest.mark.slow  # ~80 s on 2 cores; the pipeline test above is the default suite's Slurm test
def test_cancelled_task_resumes_when_resubmitted(cluster, world, runner, tmp_path):
    """scancel one query-lvlm task after its first video is checkpointed; TASKS=1 resubmits
    it alone (ZSAR_SHARDS keeps it shard 1 of 3); it resumes there and completes."""
    work = tmp_path / "work"
    work.mkdir()
    # Frames at 4 fps (16-24 per video) and six labels (12 questions per frame): the task's
    # second video takes seconds, far longer than scancel takes to stop it.
    for i in range(SHARDS):
        cli(runner, "extract-frames", str(world["videos"]), "--fps", "4", "--size", SIZE,
            "--workers", "1", "--shard", f"{i}/{SHARDS}", "-o", str(work / "frames"))  # fmt: skip
    env = job_env(tmp_path, DESCRIPTIONS=str(world["more_descriptions"]), TASKS="1")
    stage = [f"SHARDS={SHARDS}", f"WORK={work}"]
    first = make(cluster, env, "slurm-query-lvlm", *stage).split()[-1]
    part = work / "answers" / "part-00001-of-00003.parquet"
    deadline = time.monotonic() + 600
    checkpoints: list[Path] = []
    while not checkpoints:
        checkpoints = list((work / "answers").glob(".part-00001-of-00003.parquet.ckpt-*/0*"))
        assert time.monotonic() < deadline, cluster.job_states([first])
        assert not part.exists(), "the task finished before it could be cancelled"
        time.sleep(0.05)
    cluster.run(["scancel", first])
    assert cluster.wait([first], timeout=120) == {f"{first}_1": "CANCELLED"}
    assert not part.exists()

    second = make(cluster, env, "slurm-query-lvlm", *stage).split()[-1]
    states = cluster.wait([second], timeout=900)
    log = (work / "logs" / f"zsar-lvlm-{second}_1.out").read_text()
    assert states == {f"{second}_1": "COMPLETED"}, log
    assert re.search(r"\(\d+ resumed from a checkpoint\)", log), log
    assert not list((work / "answers").glob(".part-00001-*.ckpt-*"))  # removed once final

    ref = tmp_path / "ref"
    cli(runner, "query-lvlm", str(work / "frames"), "--descriptions",
        str(world["more_descriptions"]), "-m", LVLM, "--device", "cpu", "--shard", "1/3",
        "-o", str(ref))  # fmt: skip
    resumed = read_artifact(part, "answers")
    expected = read_artifact(ref / part.name, "answers")
    assert resumed.cache_key == expected.cache_key  # the same shard, the same settings
    exact = ["video_id", "frame_index", "label", "query_kind", "question", "error"]
    assert_rows_equal(resumed.table, expected.table, exact, ["p_yes", "yes_mass", "no_mass"])


def test_local_slurm_daemons_listen_on_loopback_only(cluster):
    conf = dict(re.findall(r"^(\w+)=(\S+)$", cluster.conf.read_text(), re.MULTILINE))
    ports = {int(conf["SlurmctldPort"]), int(conf["SlurmdPort"])}
    listening: dict[int, set[str]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port = local.split(":")
            if state == "0A":  # LISTEN
                listening.setdefault(int(port, 16), set()).add(address)
    assert ports <= set(listening), listening
    assert all(listening[p] == {"0100007F"} for p in ports), {p: listening[p] for p in ports}


def test_missing_slurm_skips_with_the_reason_or_fails_where_required(monkeypatch):
    """No cluster needed: without the commands the reason names them and how to install them;
    ZSAR_REQUIRE=slurm (CI) turns the skip into a failure with the same reason."""
    monkeypatch.setenv("PATH", "")
    reason = unavailable()
    assert reason is not None and "munged" in reason and "apt-get install" in reason
    monkeypatch.setenv("ZSAR_REQUIRE", "ray")
    with pytest.raises(pytest.skip.Exception, match="Slurm is not installed"):
        require("slurm", reason)
    monkeypatch.setenv("ZSAR_REQUIRE", "slurm,ray")
    with pytest.raises(pytest.fail.Exception, match="slurm is required here"):
        require("slurm", reason)
