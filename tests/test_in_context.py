"""In-context examples (`--examples`): the turns a backend renders, p_yes parity with a prompt
built by hand and run through the model's own forward, k = 0 identical to no examples, example
videos never scored, and bad example files as one line naming FILE:LINE."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zsar_cli.artifacts import read_artifact
from zsar_cli.backends import load_lvlm
from zsar_cli.backends.lvlm_base import ContextTurn, InContext
from zsar_cli.cli.app import app
from zsar_cli.prompts import context_turns, format_choice_prompt, user_turn
from zsar_cli.synthetic import LABELS, random_object, render_frame

from .test_query_lvlm_cli import fresh_frames
from .tiny_lvlms import build_tiny_idefics3, build_tiny_llava_onevision, build_tiny_qwen2_5_vl

torch.set_num_threads(2)
MODEL = "builtin:world-lvlm"
BUILDERS = {
    "idefics3": build_tiny_idefics3,
    "llava_onevision": build_tiny_llava_onevision,
    "qwen2_5_vl": build_tiny_qwen2_5_vl,
}
QUESTION = "Is there {label} in this frame?"


@pytest.fixture(scope="module", params=["fast_vlm", *BUILDERS])
def lvlm(request, tmp_path_factory):
    if request.param == "fast_vlm":
        return load_lvlm(MODEL, device="cpu", dtype="float32", batch_size=3)
    folder = BUILDERS[request.param](tmp_path_factory.mktemp(request.param))
    return load_lvlm(f"hf:{folder}", device="cpu", dtype="float32", batch_size=3)


def _frames(n: int, seed: int = 3) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [render_frame(64, 48, [random_object(rng, 64, 48)], rng=rng) for _ in range(n)]


def _reference_p_yes(lvlm, turns: list[ContextTurn], image: np.ndarray, text: str) -> float:
    """p_yes of one prompt built here from the chat messages and run through model(**inputs)."""
    examples = [(len(t.images), t.text, t.answer) for t in turns]
    rendered = lvlm.processor.apply_chat_template(
        context_turns(examples, 1, text), add_generation_prompt=True, tokenize=False
    )
    images = [im for t in turns for im in t.images] + [image]
    batch = lvlm.processor(text=[rendered], images=[images], return_tensors="pt")
    with torch.inference_mode():
        logits = lvlm.model(**batch).logits[0, -1].double()
    probs = torch.softmax(logits, -1)
    yes = float(probs[sorted(set(lvlm.yes_ids.values()))].sum())
    no = float(probs[sorted(set(lvlm.no_ids.values()))].sum())
    return yes / (yes + no)


def test_context_turns_layout():
    assert context_turns([], 2, "q?") == user_turn(2, "q?")
    messages = context_turns([(1, "a?", "Yes"), (2, "b?", "No")], 1, "q?")
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert messages[1]["content"] == [{"type": "text", "text": "Yes"}]
    assert messages[2] == user_turn(2, "b?")[0]


def test_in_context_parity_with_hand_built_prompt(lvlm):
    assert isinstance(lvlm, InContext)
    ex = _frames(2, seed=5)
    query = _frames(2, seed=9)
    turns = [
        ContextTurn((ex[0],), QUESTION.format(label="a red circle"), "Yes"),
        ContextTurn((ex[1],), QUESTION.format(label="a blue square"), "No"),
    ]
    text = QUESTION.format(label="a green triangle")
    plain = lvlm.yes_no([[q] for q in query], [text, text]).p_yes
    with lvlm.in_context([]):  # k = 0 is the plain prompt
        np.testing.assert_array_equal(lvlm.yes_no([[q] for q in query], [text, text]).p_yes, plain)
    for reuse in (False, True):
        lvlm.reuse = reuse
        lvlm.features.clear()
        with lvlm.in_context(turns):
            rendered = lvlm.prompt_text(1, text)
            got = lvlm.yes_no([[q] for q in query], [text, text]).p_yes
        expected = [_reference_p_yes(lvlm, turns, q, text) for q in query]
        np.testing.assert_allclose(got, expected, atol=1e-5)
    lvlm.reuse = True
    assert rendered.count("Yes") >= 1 and rendered.index("Yes") < rendered.rindex("green triangle")
    assert lvlm.context == () and lvlm._context_images == []  # the block restores the plain path
    assert np.abs(np.asarray(got) - plain).max() > 1e-6  # the examples reach the model


def _examples(tmp_path, lines: list[str], name: str = "examples.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _query(runner, frames, out, *extra):
    return runner.invoke(
        app,
        ["query-lvlm", str(frames), "-o", str(out), "--model", MODEL, "--device", "cpu",
         "--question", QUESTION, "--labels", str(frames.parent / "labels.txt"), *extra],
    )  # fmt: skip


def _p_yes(path) -> dict[tuple[str, str], float]:
    rows = read_artifact(path, "answers").table.to_pylist()
    return {(r["video_id"], r["label"]): r["p_yes"] for r in rows}


def test_query_lvlm_examples_left_out_and_k0_identical(tmp_path, runner):
    frames, truth = fresh_frames(tmp_path / "frames.parquet", n_videos=6)
    (tmp_path / "labels.txt").write_text("\n".join(LABELS[:3]) + "\n")
    shown = next(v for v, label in truth.items() if label is not None)
    lines = [
        "source,label,answer",
        f"frames.parquet#{shown},{truth[shown]},yes",
        f"frames.parquet#vid00,{LABELS[0]},no",
    ]
    plain = _query(runner, frames, tmp_path / "plain.parquet")
    assert plain.exit_code == 0, plain.output
    empty = _query(runner, frames, tmp_path / "k0.parquet", "--examples",
                   _examples(tmp_path, ["source,label,answer"], "k0.csv"))  # fmt: skip
    assert empty.exit_code == 0, empty.output
    assert _p_yes(tmp_path / "k0.parquet") == _p_yes(tmp_path / "plain.parquet")
    res = _query(runner, frames, tmp_path / "k2.parquet", "--examples", _examples(tmp_path, lines))
    assert res.exit_code == 0, res.output
    assert "2 in-context example videos left out" in res.output
    with_examples = _p_yes(tmp_path / "k2.parquet")
    assert {v for v, _ in with_examples} == set(truth) - {shown, "vid00"}
    baseline = _p_yes(tmp_path / "plain.parquet")
    assert max(abs(p - baseline[key]) for key, p in with_examples.items()) > 1e-6
    meta = read_artifact(tmp_path / "k2.parquet", "answers").meta
    assert any(k.startswith("examples:") for k in meta.upstream)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("frames.parquet#vid01,a red circle,maybe", "examples.csv:2: a yes/no example needs"),
        ("frames.parquet#nope,a red circle,yes", "examples.csv:2: "),
        ("missing.mp4,a red circle,yes", "examples.csv:2: no such video"),
        ("only-one-field", "examples.csv:2: expected 'source,label[,answer]'"),
    ],
)
def test_bad_examples_file_is_one_line(tmp_path, runner, line, message):
    frames, _ = fresh_frames(tmp_path / "frames.parquet", n_videos=2)
    (tmp_path / "labels.txt").write_text("a red circle\n")
    res = _query(runner, frames, tmp_path / "out.parquet", "--examples",
                 _examples(tmp_path, ["source,label,answer", line]))  # fmt: skip
    assert res.exit_code == 1, res.output
    assert message in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "out.parquet").exists()


def test_examples_refused_where_unsupported(tmp_path, runner):
    frames, _ = fresh_frames(tmp_path / "frames.parquet", n_videos=2)
    (tmp_path / "labels.txt").write_text("a red circle\n")
    path = _examples(tmp_path, ["frames.parquet#vid01,a red circle,yes"])
    res = _query(runner, frames, tmp_path / "o.parquet", "--examples", path, "--mode", "generate")
    assert res.exit_code != 0 and "--examples works in --mode yesno and choice" in res.output


def test_choice_examples_and_classify(tmp_path, runner):
    frames, truth = fresh_frames(tmp_path / "frames.parquet", n_videos=6)
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    shown = [v for v, label in truth.items() if label is not None]
    examples = _examples(tmp_path, [f"frames.parquet#{shown[0]},{truth[shown[0]]}"])
    # The turn of a choice example: the query's options, answered with the label's letter.
    from zsar_cli.stages.in_context import choice_turns, load_examples

    loaded = load_examples(examples, "choice", 1)
    (turn,) = choice_turns(loaded, "Which?", LABELS)
    assert turn.text == format_choice_prompt("Which?", LABELS)
    assert turn.answer == "ABCDEFGHIJKL"[LABELS.index(truth[shown[0]])]
    assert choice_turns(loaded, "Which?", [x for x in LABELS if x != truth[shown[0]]]) == []

    def classify(out, *extra):
        res = runner.invoke(
            app,
            ["classify", str(frames), "-l", str(labels), "-m", "builtin:world-clip", "--lvlm",
             MODEL, "--shortlist", "12", "--device", "cpu", "-o", str(out), *extra],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        return res, read_artifact(out, "predictions").table.to_pylist()

    _, plain = classify(tmp_path / "p.parquet")
    _, k0 = classify(
        tmp_path / "k0.parquet", "--examples", _examples(tmp_path, ["source,label"], "k0.csv")
    )
    assert k0 == plain
    res, k1 = classify(tmp_path / "k1.parquet", "--examples", examples)
    assert "1 in-context example videos left out" in res.output
    assert {r["video_id"] for r in k1} == {r["video_id"] for r in plain} - {shown[0]}
    bad = _examples(tmp_path, [f"frames.parquet#{shown[0]},a purple hexagon"])
    res = runner.invoke(
        app,
        ["classify", str(frames), "-l", str(labels), "-m", "builtin:world-clip", "--lvlm", MODEL,
         "--device", "cpu", "--examples", str(bad)],
    )  # fmt: skip
    assert res.exit_code == 1 and "examples.csv:1: label 'a purple hexagon' is not in" in res.output
