"""Served LVLMs (`--model openai:URL#MODEL`, issue 18) against a real local HTTP server.

The server (tests/served_lvlm.py, a subprocess on 127.0.0.1 started here and stopped by pid)
serves the world LVLM through the OpenAI chat-completions protocol with top-k log-probs, and
counts requests and injects faults on demand. Checked: p_yes and both masses equal the local
`hf:` backend's where the top-k covers the yes/no spellings (the parity figure is printed, -s),
the documented truncation where k is too small, retries on 429/5xx with backoff, per-request
timeouts, the response cache (a rerun sends nothing; a run that failed half-way resends only
what was not answered), API keys from the environment only, and spec errors.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
import urllib.request
from dataclasses import replace

import numpy as np
import pytest

from zsar_cli.artifacts import read_artifact
from zsar_cli.backends import load_lvlm
from zsar_cli.backends.openai_lvlm import parse_spec
from zsar_cli.cli.app import app
from zsar_cli.errors import ModelError
from zsar_cli.stages import query_lvlm as stage
from zsar_cli.stages.query_lvlm_config import QueryConfig

from .served_lvlm import running

LVLM = "builtin:world-lvlm"
NAME = "world-lvlm"
SCORES = ["p_yes", "yes_mass", "no_mass"]
KEYS = ["video_id", "frame_index", "label", "query_kind", "question", "error"]


@pytest.fixture(scope="module")
def server():
    with running("--model", LVLM, "--name", NAME) as url:
        yield url


def call(url: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method="POST" if data else "GET")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture
def fresh(server):
    """The server with no faults and zeroed counters, before and after the test."""
    call(server, "/control", {"reset": True})
    yield server
    call(server, "/control", {"reset": True})


def stats(url: str) -> dict:
    return call(url, "/stats")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Two short world videos at 1 fps and the descriptions of two labels (4 questions/frame)."""
    from zsar_cli.stages import extract_frames
    from zsar_cli.stages.extract_frames_config import ExtractConfig
    from zsar_cli.synthetic import SynthConfig, generate_world

    root = tmp_path_factory.mktemp("served-world")
    generate_world(
        root / "world",
        SynthConfig(
            trimmed=0,
            untrimmed=2,
            anomaly=0,
            seed=11,
            width=160,
            height=120,
            fps=10,
            untrimmed_duration=(4.0, 5.0),
            instances=(1, 1),
            instance_duration=(2.0, 3.0),
            phase_seconds=1.0,
        ),
    )
    truth = json.loads((root / "world" / "untrimmed" / "activitynet.json").read_text())
    labels = [v["annotations"][0]["label"] for v in truth["database"].values()]
    everything = json.loads((root / "world" / "descriptions.json").read_text())
    chosen = [d for d in everything if d["label"] in labels]
    chosen += [d for d in everything if d not in chosen][: 2 - len(chosen)]
    (root / "desc.json").write_text(json.dumps(chosen[:2]))
    frames = root / "frames.parquet"
    extract_frames.run([str(root / "world" / "untrimmed")], frames, ExtractConfig(fps=1, size=96))
    return {"frames": frames, "descriptions": root / "desc.json"}


def served(url: str) -> str:
    return f"openai:{url}/v1#{NAME}"


def config(world, model: str, **options) -> QueryConfig:
    return QueryConfig(
        model=model, descriptions_file=str(world["descriptions"]), device="cpu", **options
    )


@contextlib.contextmanager
def one_thread():
    """torch on one thread, as the server runs: float32 sums split over another number of
    threads (or batches) round differently, by ~1e-6 in p_yes (see the parity test)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def local_answers(world, tmp_path_factory):
    """The local backend as the server runs each request: one prompt per pass, one thread."""
    out = tmp_path_factory.mktemp("local") / "answers.parquet"
    with one_thread():
        stage.run(world["frames"], out, config(world, LVLM, batch_size=1))
    return read_artifact(out, "answers")


def max_difference(a, b) -> float:
    return max(
        float(
            np.abs(
                np.array(a.column(c).to_pylist(), np.float64)
                - np.array(b.column(c).to_pylist(), np.float64)
            ).max()
        )
        for c in SCORES
    )


def test_served_p_yes_equals_the_local_backend(world, fresh, local_answers, tmp_path):
    out = tmp_path / "served.parquet"
    summary = stage.run(world["frames"], out, config(world, served(fresh)))
    got = read_artifact(out, "answers")
    rows = local_answers.table.num_rows
    assert summary.rows == rows > 20
    assert got.table.select(KEYS).to_pylist() == local_answers.table.select(KEYS).to_pylist()
    worst = max_difference(got.table, local_answers.table)
    stage.run(world["frames"], tmp_path / "batched.parquet", config(world, LVLM))
    batched = max_difference(got.table, read_artifact(tmp_path / "batched.parquet").table)
    print(
        f"\nserved (top-20 log-probs) vs local hf: backend, {rows} answers, max |Δ| over p_yes, "
        f"yes_mass, no_mass: {worst:.1e} (local one prompt per pass, one thread, as served), "
        f"{batched:.1e} (local default: batches of 8, all threads)"
    )
    assert worst <= 1e-6
    assert batched <= 1e-5
    assert len(set(got.table.column("p_yes").to_pylist())) > 5  # real, varied answers
    # k is recorded (metadata and cache key); a local run's settings and key are as before.
    assert got.meta.extra_json("top_logprobs") == 20 and got.meta.config["top_logprobs"] == 20
    assert "top_logprobs" not in local_answers.meta.config
    assert stats(fresh) == {"requests": rows, "completions": rows, "failed": 0, "delayed": 0}
    # A rerun sends nothing.
    assert stage.run(world["frames"], out, config(world, served(fresh))).skipped
    assert stats(fresh)["requests"] == rows


def truncated(lvlm, images, prompt: str, k: int) -> tuple[float, float, float]:
    """The documented rule on the local model: the local formula on the top-k only."""
    import torch

    from zsar_cli.prompts import NO_SPELLINGS, YES_SPELLINGS

    logits = lvlm.next_token_logits(lvlm.build_inputs([images], [prompt]))[0]
    logprobs = torch.log_softmax(logits.double(), dim=-1)
    values, ids = torch.topk(logprobs, k)
    tokens = [lvlm.tokenizer.decode([int(i)]) for i in ids]
    pairs = [(t, math.exp(float(v))) for t, v in zip(tokens, values, strict=True)]
    yes = sum(p for t, p in pairs if t in YES_SPELLINGS)
    no = sum(p for t, p in pairs if t in NO_SPELLINGS)
    return (yes / (yes + no) if yes + no > 0 else 0.5), yes, no


def test_top_k_too_small_truncates_as_documented(world, fresh, local_answers, tmp_path):
    """k=1: mass outside the top-1 is counted 0, so the masses are lower bounds and p_yes is the
    local formula on the truncated distribution: 0 or 1 here (0.5 if neither spelling is in)."""
    from zsar_cli.images import decode_image, image_encoding

    out = tmp_path / "k1.parquet"
    stage.run(world["frames"], out, config(world, served(fresh), top_logprobs=1))
    got = read_artifact(out, "answers")
    assert got.meta.extra_json("top_logprobs") == 1
    frames = read_artifact(world["frames"], "frames")
    encoding = image_encoding(frames.meta.extra)
    image_of = {
        (r["video_id"], r["frame_index"]): decode_image(
            r["image"], encoding, r["width"], r["height"]
        )
        for r in frames.table.to_pylist()
    }
    lvlm = load_lvlm(LVLM, device="cpu")
    rows = got.table.to_pylist()
    local = local_answers.table.to_pylist()
    lower_bound = changed = 0
    for row, full in zip(rows, local, strict=True):
        image = image_of[(row["video_id"], row["frame_index"])]
        with one_thread():
            expected = truncated(lvlm, [image], row["question"], 1)
        np.testing.assert_allclose([row[c] for c in SCORES], expected, atol=1e-6)
        lower_bound += row["yes_mass"] <= full["yes_mass"] + 1e-6
        lower_bound += row["no_mass"] <= full["no_mass"] + 1e-6
        changed += abs(row["p_yes"] - full["p_yes"]) > 1e-3
    assert lower_bound == 2 * len(rows)
    assert changed > 0  # the truncation is visible: one token cannot cover both spellings
    assert {row["p_yes"] for row in rows} <= {0.0, 0.5, 1.0}


def test_retries_on_429_and_5xx_then_success(world, fresh, local_answers, tmp_path):
    call(fresh, "/control", {"fail": [[429, 2], [500, 1], [503, 1]]})
    out = tmp_path / "retried.parquet"
    stage.run(world["frames"], out, config(world, served(fresh)))
    rows = local_answers.table.num_rows
    assert stats(fresh) == {"requests": rows + 4, "completions": rows, "failed": 4, "delayed": 0}
    a = read_artifact(out, "answers").table
    np.testing.assert_allclose(
        a.column("p_yes").to_numpy(), local_answers.table.column("p_yes").to_numpy(), atol=1e-6
    )


def test_retries_exhausted_is_one_clear_error(world, fresh, tmp_path, runner):
    call(fresh, "/control", {"fail": [[503, 1000]]})
    args = ["query-lvlm", str(world["frames"]), "--descriptions", str(world["descriptions"])]
    args += ["-m", served(fresh), "--request-retries", "1", "-o", str(tmp_path / "x.parquet")]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "HTTP 503 Service Unavailable: injected 503 (2 tries)" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "x.parquet").exists()


def test_per_request_timeout_then_retry(world, fresh, local_answers, tmp_path):
    call(fresh, "/control", {"delay": [3.0, 1]})
    out = tmp_path / "slow.parquet"
    started = time.monotonic()
    stage.run(world["frames"], out, config(world, served(fresh), request_timeout=1.0))
    rows = local_answers.table.num_rows
    assert stats(fresh)["delayed"] == 1 and stats(fresh)["requests"] == rows + 1
    assert time.monotonic() - started < 60
    # Every request too slow: the run stops with the timeout named.
    call(fresh, "/control", {"delay": [3.0, 100]})
    slow = config(world, served(fresh), request_timeout=0.5, request_retries=0)
    with pytest.raises(
        ModelError, match=r"no response within 0\.5 s \(--request-timeout\) \(1 try\)"
    ):
        stage.run(world["frames"], tmp_path / "slower.parquet", slow)


def test_response_cache_a_failed_run_resends_only_the_unanswered(world, fresh, tmp_path):
    """The server fails (400) every request after its first 9 answers; the run stops. The
    rerun sends only what had no answer, and a complete output's rerun sends nothing."""
    call(fresh, "/control", {"fail_after": [9, 400]})
    out = tmp_path / "answers.parquet"
    with pytest.raises(ModelError, match="HTTP 400"):
        stage.run(world["frames"], out, config(world, served(fresh), request_concurrency=2))
    completed = stats(fresh)["completions"]
    cache = list(tmp_path.glob(".answers.parquet.ckpt-*/responses/*.jsonl"))
    assert len(cache) == 1
    # Every answer the client received is cached. With 2 requests in flight, one the server
    # completed may still be on its way when the run stops, so the cache can hold one fewer.
    answered = len(cache[0].read_text().splitlines())
    assert 9 <= answered <= completed
    call(fresh, "/control", {"reset": True})
    summary = stage.run(world["frames"], out, config(world, served(fresh)))
    total = summary.rows
    assert stats(fresh)["requests"] == total - answered
    assert not list(tmp_path.glob(".answers.parquet.ckpt-*"))  # responses go with checkpoints
    assert stage.run(world["frames"], out, config(world, served(fresh))).skipped
    assert stats(fresh)["requests"] == total - answered


def test_api_key_from_the_environment_only(world, fresh, tmp_path, runner, monkeypatch):
    secret = "sk-zsar-test-4f1c9"
    call(fresh, "/control", {"require_key": secret})
    monkeypatch.delenv("ZSAR_OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    out = tmp_path / "answers.parquet"
    args = ["query-lvlm", str(world["frames"]), "--descriptions", str(world["descriptions"])]
    args += ["-m", served(fresh), "-o", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "HTTP 401" in result.output and "ZSAR_OPENAI_API_KEY" in result.output
    # A wrong key is refused without being echoed (OPENAI_API_KEY is read when ours is unset).
    wrong = "sk-zsar-wrong-77e2a"
    monkeypatch.setenv("OPENAI_API_KEY", wrong)
    monkeypatch.setenv("ZSAR_VERBOSE", "1")  # the most a user can make it say
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "HTTP 401" in result.output
    assert wrong not in result.output
    monkeypatch.delenv("ZSAR_VERBOSE")
    monkeypatch.setenv("ZSAR_OPENAI_API_KEY", secret)  # takes precedence
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert secret not in result.output
    assert secret.encode() not in out.read_bytes()
    meta = read_artifact(out).meta
    assert secret not in json.dumps([meta.config, meta.extra, meta.upstream])
    # Nor in any file the runs left (checkpoints, the response cache, temporaries).
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert secret.encode() not in data and wrong.encode() not in data, path


def test_spec_errors_are_one_line(runner, tmp_path):
    assert parse_spec("http://h:8000/v1#m/n") == ("http://h:8000/v1/chat/completions", "m/n")
    assert parse_spec("https://h/v1/chat/completions#m")[0] == "https://h/v1/chat/completions"
    for rest, message in (
        ("http://h:8000/v1", "expected openai:URL#MODEL"),
        ("ftp://h/v1#m", "is not an http(s) URL"),
        ("http://user:pw@h/v1#m", "put the key in ZSAR_OPENAI_API_KEY"),
        ("http://h/v1?api_key=x#m", "put the key in ZSAR_OPENAI_API_KEY"),
    ):
        with pytest.raises(ModelError, match=re.escape(message)):
            load_lvlm(f"openai:{rest}")
    # Token selection needs the model's internals, which a server does not expose.
    from zsar_cli.stages.token_scores import check_family

    with pytest.raises(ModelError, match="no token-selection hooks"):
        check_family(load_lvlm("openai:http://127.0.0.1:9/v1#m"))


def test_choice_and_generate_through_the_server(world, fresh, tmp_path):
    """Choice: option-letter masses from the top-k (equal to local where it covers them);
    generate: the server's greedy text."""
    labels = tmp_path / "labels.txt"
    descriptions = json.loads(world["descriptions"].read_text())
    labels.write_text("\n".join(d["label"] for d in descriptions) + "\n")
    base = QueryConfig(model=LVLM, mode="choice", labels_file=str(labels), device="cpu")
    stage.run(world["frames"], tmp_path / "local.parquet", base)
    stage.run(world["frames"], tmp_path / "served.parquet", replace(base, model=served(fresh)))
    a = read_artifact(tmp_path / "local.parquet").table
    b = read_artifact(tmp_path / "served.parquet").table
    assert a.select(["video_id", "frame_index", "label", "answer"]).equals(
        b.select(["video_id", "frame_index", "label", "answer"])
    )
    np.testing.assert_allclose(
        b.column("p_yes").to_numpy(), a.column("p_yes").to_numpy(), atol=1e-6
    )

    gen = QueryConfig(model=LVLM, mode="generate", question="What is shown?", device="cpu")
    gen = replace(gen, max_new_tokens=4)
    stage.run(world["frames"], tmp_path / "gen-local.parquet", gen)
    stage.run(world["frames"], tmp_path / "gen-served.parquet", replace(gen, model=served(fresh)))
    texts = [
        read_artifact(tmp_path / f"gen-{w}.parquet").table.column("answer").to_pylist()
        for w in ("local", "served")
    ]
    assert texts[0] == texts[1] and any(texts[0])
