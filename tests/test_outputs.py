"""The one overwrite policy (zsar_cli.outputs) on every command that writes a file, the output
lock under concurrent runs, the error boundary's exit codes, and the library API.

Fixture: a tiny world (3 trimmed clips) taken through extract-frames → encode → encode-text →
classify with the built-in world CLIP, so every writing command has real inputs to protect.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zsar_cli.artifacts import read_artifact
from zsar_cli.cli.app import app

WORLD_CLIP = "builtin:world-clip"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    from typer.testing import CliRunner

    runner = CliRunner()
    root = tmp_path_factory.mktemp("chain")

    def ok(*args: str) -> None:
        res = runner.invoke(app, list(args))
        assert res.exit_code == 0, res.output

    ok("synth", str(root / "w"), "--trimmed", "3", "--untrimmed", "0", "--anomaly", "0")
    videos = root / "w" / "trimmed" / "list.csv"
    labels = root / "w" / "labels.txt"
    ok("extract-frames", str(videos), "-o", str(root / "frames.parquet"), "-n", "2")
    ok("encode", str(root / "frames.parquet"), "-o", str(root / "emb.parquet"), "-m", WORLD_CLIP)
    ok("encode-text", "-l", str(labels), "-o", str(root / "text.parquet"), "-m", WORLD_CLIP)
    ok("classify", str(root / "emb.parquet"), "-l", str(labels), "-o", str(root / "pred.parquet"))
    ok("extract-frames", str(videos), "-o", str(root / "parts"), "-n", "2", "--shard", "0/2")
    ok("extract-frames", str(videos), "-o", str(root / "parts"), "-n", "2", "--shard", "1/2")
    first_video = sorted((root / "w" / "trimmed").glob("*.mp4"))[0]
    return {"root": root, "videos": videos, "labels": labels, "video": first_video}


def _own_input_cases(c):
    r = c["root"]
    frames, emb, pred = r / "frames.parquet", r / "emb.parquet", r / "pred.parquet"
    part = r / "parts" / "part-00000-of-00002.parquet"
    desc = r / "w" / "descriptions.json"
    return {
        "extract-frames": (["extract-frames", str(c["video"]), "-o", str(c["video"])], c["video"]),
        "encode": (["encode", str(frames), "-o", str(frames), "-m", WORLD_CLIP], frames),
        "encode-text": (
            ["encode-text", "-l", str(c["labels"]), "-o", str(c["labels"]), "-m", WORLD_CLIP],
            c["labels"],
        ),
        "classify": (["classify", str(emb), "-l", str(c["labels"]), "-o", str(emb)], emb),
        "score": (["score", str(pred), "-o", str(pred)], pred),
        "merge": (["merge", str(r / "parts"), "-o", str(part)], part),
        "query-lvlm": (
            [
                "query-lvlm",
                str(frames),
                "-o",
                str(frames),
                "--question",
                "Is it red?",
                "-m",
                "builtin:world-lvlm",
            ],
            frames,
        ),
        "select-tokens": (
            [
                "select-tokens",
                str(emb),
                "-o",
                str(emb),
                "--scorer",
                "clip",
                "--question",
                "a red circle",
                "--baseline-frames",
                "2",
            ],
            emb,
        ),
        "localize": (
            [
                "localize",
                "--method",
                "clip",
                "--embeddings",
                str(emb),
                "--text",
                str(r / "text.parquet"),
                "-o",
                str(emb),
            ],
            emb,
        ),
        "describe": (["describe", "--from", str(desc), "-o", str(desc)], desc),
    }


@pytest.mark.parametrize(
    "command",
    [
        "extract-frames",
        "encode",
        "encode-text",
        "classify",
        "score",
        "merge",
        "query-lvlm",
        "select-tokens",
        "localize",
        "describe",
    ],
)
def test_no_command_writes_over_its_own_input(chain, runner, command):
    args, victim = _own_input_cases(chain)[command]
    before = _digest(victim)
    for extra in ([], ["--force"]):
        res = runner.invoke(app, args + extra)
        assert res.exit_code == 1, res.output
        assert "is an input of this run" in res.output and "even with --force" in res.output
        assert len(res.output.strip().splitlines()) == 1, res.output
    assert _digest(victim) == before
    leftovers = [
        p.name
        for p in victim.parent.iterdir()
        if p.name.startswith(".") and (".lock" in p.name or ".tmp-" in p.name)
    ]
    assert leftovers == []


def test_other_settings_refused_unless_force(chain, runner, tmp_path):
    c = chain
    frames = c["root"] / "frames.parquet"
    pred = c["root"] / "pred.parquet"
    cases = [
        (
            ["encode", str(frames), "-m", WORLD_CLIP],
            ["--dtype", "float16"],
            ["--dtype", "float32"],
        ),
        (
            ["encode-text", "-l", str(c["labels"]), "-m", WORLD_CLIP],
            ["--templates", "video"],
            ["--templates", "none"],
        ),
        (
            ["classify", str(c["root"] / "emb.parquet"), "-l", str(c["labels"])],
            ["--pooling", "mean-embedding"],
            ["--pooling", "mean-prob"],
        ),
        (["score", str(pred)], ["--seed", "0"], ["--seed", "1"]),
        (["extract-frames", str(c["videos"])], ["-n", "2"], ["-n", "3"]),
        (
            ["describe", "--from", str(c["root"] / "w" / "descriptions.json")],
            ["--descriptors", "4"],
            ["--descriptors", "3"],
        ),
    ]
    for number, (base, first, second) in enumerate(cases):
        out = tmp_path / f"out{number}.parquet"
        res = runner.invoke(app, [*base, "-o", str(out), *first])
        assert res.exit_code == 0, res.output
        key = read_artifact(out).cache_key
        res = runner.invoke(app, [*base, "-o", str(out), *first])  # same settings: fine
        assert res.exit_code == 0, res.output
        res = runner.invoke(app, [*base, "-o", str(out), *second])
        assert res.exit_code == 1 and "other settings" in res.output, (base, res.output)
        assert read_artifact(out).cache_key == key  # untouched
        res = runner.invoke(app, [*base, "-o", str(out), *second, "--force"])
        assert res.exit_code == 0, res.output
        assert read_artifact(out).cache_key != key


def test_text_outputs_follow_the_same_policy(tmp_path):
    from zsar_cli.errors import CacheMismatchError, InputError
    from zsar_cli.outputs import io_scope, note_input, write_text_atomic

    out = tmp_path / "r.json"
    write_text_atomic(out, "{}\n")
    write_text_atomic(out, "{}\n")  # same content: up to date
    with pytest.raises(CacheMismatchError, match="other content"):
        write_text_atomic(out, '{"a": 1}\n')
    write_text_atomic(out, '{"a": 1}\n', force=True)
    assert out.read_text() == '{"a": 1}\n'
    with io_scope():
        note_input(out)
        with pytest.raises(InputError, match="input of this run"):
            write_text_atomic(out, "x", force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_two_concurrent_runs_to_one_output(chain, tmp_path):
    """Ten rounds of two identical runs started together on one output: both succeed, the
    output equals a single run's, and no lock, temp or checkpoint file is left behind."""
    reference = tmp_path / "ref.parquet"
    cmd = [sys.executable, "-m", "zsar_cli", "extract-frames", str(chain["videos"]), "-n", "3"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run([*cmd, "-o", str(reference)], check=True, env=env, capture_output=True)
    expected = read_artifact(reference).table
    for round_number in range(10):
        folder = tmp_path / f"round{round_number}"
        folder.mkdir()
        out = folder / "frames.parquet"
        procs = [
            subprocess.Popen(
                [*cmd, "-o", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            for _ in range(2)
        ]
        results = [(p.wait(timeout=120), p.stderr.read().decode()) for p in procs]  # type: ignore[union-attr]
        assert all(code == 0 for code, _ in results), results
        assert read_artifact(out).table.equals(expected)
        assert [p.name for p in folder.iterdir()] == ["frames.parquet"]


def test_output_lock_serialises_threads(tmp_path):
    """In one process, a second thread waits for the first (locks are per thread)."""
    import threading
    import time

    from zsar_cli.outputs import output_lock

    target = tmp_path / "x.parquet"
    order: list[str] = []

    def hold(name: str, pause: float) -> None:
        with output_lock(target):
            order.append(f"{name}+")
            time.sleep(pause)
            order.append(f"{name}-")

    first = threading.Thread(target=hold, args=("a", 0.3))
    first.start()
    time.sleep(0.05)
    second = threading.Thread(target=hold, args=("b", 0.0))
    second.start()
    first.join()
    second.join()
    assert order == ["a+", "a-", "b+", "b-"]
    assert list(tmp_path.iterdir()) == []


def test_internal_error_exits_70_and_user_error_1(chain, runner, monkeypatch):
    frames = str(chain["root"] / "frames.parquet")
    res = runner.invoke(app, ["encode", "missing.parquet", "-o", "x.parquet"])
    assert res.exit_code == 1 and "missing.parquet" in res.output
    res = runner.invoke(app, ["encode", "--no-such-option"])
    assert res.exit_code == 2
    res = runner.invoke(app, ["encode", frames, "-o", ""])
    assert res.exit_code == 1 and "-o ''" in res.output
    from zsar_cli.stages import encode as stage

    def broken(*args, **kwargs):
        raise RuntimeError("injected bug\nsecond line")

    monkeypatch.setattr(stage, "run", broken)
    res = runner.invoke(app, ["encode", frames, "-o", "x.parquet"])
    assert res.exit_code == 70
    line = res.output.strip()
    assert line.startswith("error: internal error: RuntimeError: injected bug second line")
    assert "ZSAR_DEBUG=1" in line and len(line.splitlines()) == 1

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(stage, "run", interrupted)
    res = runner.invoke(app, ["encode", frames, "-o", "x.parquet"])
    assert res.exit_code == 130 and "interrupted" in res.output


def test_library_api_equals_the_cli(chain, tmp_path):
    import zsar_cli as zs

    assert {"extract_frames", "encode", "classify", "score"} <= set(dir(zs))
    c = chain
    frames = tmp_path / "frames.parquet"
    zs.extract_frames(str(c["videos"]), frames, num_frames=2)
    assert read_artifact(frames).cache_key == read_artifact(c["root"] / "frames.parquet").cache_key
    emb = tmp_path / "emb.parquet"
    zs.encode(frames, emb, model=WORLD_CLIP)
    assert read_artifact(emb).table.equals(read_artifact(c["root"] / "emb.parquet").table)
    preds = zs.classify(emb, labels=c["labels"], templates="video")
    cli = read_artifact(c["root"] / "pred.parquet").table
    assert preds.column("label").to_pylist() == cli.column("label").to_pylist()
    assert preds.column("score").to_pylist() == pytest.approx(cli.column("score").to_pylist())
    report = zs.score(c["root"] / "pred.parquet")
    assert report.summary()["top1"] == 1.0
    from zsar_cli.errors import ConfigError

    with pytest.raises(ConfigError, match=r"unknown option.*num_framez"):
        zs.extract_frames(str(c["videos"]), tmp_path / "f.parquet", num_framez=2)


def test_import_stays_light():
    code = (
        "import sys, zsar_cli, zsar_cli.cli.app; "
        "print(sorted(m for m in ('torch', 'numpy', 'pyarrow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_localize_on_the_runner_shards_rerun_and_merge(chain, runner, tmp_path):
    """localize writes through the per-video runner: a rerun of a shard is up to date (its
    cache key once differed between the check and the write), and merged parts equal the
    unsharded output row for row."""
    r = chain["root"]
    base = ["localize", "--method", "clip", "--embeddings", str(r / "emb.parquet")]
    base += ["--text", str(r / "text.parquet"), "--window", "1", "--min-frames", "1"]
    whole = tmp_path / "whole.parquet"
    assert runner.invoke(app, [*base, "-o", str(whole)]).exit_code == 0
    parts = tmp_path / "parts"
    for index in (0, 1):
        res = runner.invoke(app, [*base, "-o", str(parts), "--shard", f"{index}/2"])
        assert res.exit_code == 0, res.output
    again = runner.invoke(app, [*base, "-o", str(parts), "--shard", "0/2"])
    assert again.exit_code == 0 and "up to date" in again.output, again.output
    merged = tmp_path / "merged.parquet"
    assert runner.invoke(app, ["merge", str(parts), "-o", str(merged)]).exit_code == 0
    assert read_artifact(merged).table.equals(read_artifact(whole).table)
    assert read_artifact(whole).table.num_rows > 0


def test_report_refuses_another_report_unless_force(chain, runner, tmp_path):
    """A report folder holding another run's report is refused before any figure changes."""
    r = chain["root"]
    other = tmp_path / "other.parquet"
    res = runner.invoke(
        app,
        [
            "classify",
            str(r / "emb.parquet"),
            "-l",
            str(chain["labels"]),
            "-o",
            str(other),
            "--pooling",
            "mean-prob",
        ],
    )
    assert res.exit_code == 0, res.output
    out = tmp_path / "report"
    assert runner.invoke(app, ["report", str(r / "pred.parquet"), "-o", str(out)]).exit_code == 0
    before = {p.name: _digest(p) for p in out.iterdir()}
    res = runner.invoke(app, ["report", str(r / "pred.parquet"), "-o", str(out)])
    assert res.exit_code == 0, res.output  # same report: fine
    res = runner.invoke(app, ["report", str(other), "-o", str(out)])
    assert res.exit_code == 1 and "--force" in res.output, res.output
    assert {p.name: _digest(p) for p in out.iterdir()} == before
    res = runner.invoke(app, ["report", str(other), "-o", str(out), "--force"])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in out.iterdir()) == sorted(before)
