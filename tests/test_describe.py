"""`describe`: JSON parsing/validation, retry, cache, `--from`, real generation from a tiny LM."""

from __future__ import annotations

import json

import pytest

from zsar_cli.artifacts import read_artifact
from zsar_cli.cli.app import app
from zsar_cli.errors import ModelError
from zsar_cli.stages import describe as stage
from zsar_cli.stages.describe import (
    DescribeConfig,
    DescriptionFormatError,
    describe_labels,
    parse_answer,
)

GOOD = {
    "description": "A red round shape sits on a gray background.",
    "descriptors": [
        "red color",
        "round outline",
        "smooth edge",
        "flat fill",
        "gray backdrop",
        "single object",
        "no corners",
        "solid shape",
    ],
    "start_question": "Is a red circle just appearing in the frame",
    "end_question": "Is the red circle about to leave the frame?",
}


class ScriptedLLM:
    """A deterministic stand-in for the text model: returns scripted answers in order and records
    the prompts it was given (the model is not what these tests check; parsing and retry are)."""

    def __init__(self, answers):
        self.answers = list(answers)
        self.prompts: list[str] = []

    def __call__(self, prompts):
        self.prompts += prompts
        return [self.answers.pop(0) for _ in prompts]


def test_parse_answer_accepts_json_inside_chatter():
    text = "Sure! Here it is:\n```json\n" + json.dumps(GOOD) + "\n```"
    rec = parse_answer(text, "a red circle", 8)
    assert rec["label"] == "a red circle"
    assert rec["descriptors"] == GOOD["descriptors"]
    assert rec["start_question"] == "Is a red circle just appearing in the frame?"  # '?' added
    assert rec["end_question"] == GOOD["end_question"]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("I think a red circle is round.", "no JSON object"),
        ('{"description": "x", "descriptors": [}', "invalid JSON"),
        (json.dumps({**GOOD, "descriptors": "red, round"}), "not a list of strings"),
        (json.dumps({**GOOD, "descriptors": ["red"]}), "need at least 3"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "end_question"}), "'end_question'"),
        ("[1, 2]", "no JSON object"),
    ],
)
def test_parse_answer_rejects_with_reason(answer, reason):
    with pytest.raises(DescriptionFormatError, match=reason):
        parse_answer(answer, "a red circle", 8)


def test_retry_once_with_stricter_prompt_then_succeeds(tmp_path):
    llm = ScriptedLLM(["not json at all", json.dumps(GOOD)])
    config = DescribeConfig(model="hf:test/scripted", descriptors=5)
    records = describe_labels(["a red circle"], llm, config, cache_dir=tmp_path / "cache")
    assert len(llm.prompts) == 2
    assert "Output ONLY the JSON object" in llm.prompts[1]
    assert "no JSON object" in llm.prompts[1]  # the reason is fed back
    assert records[0]["descriptors"] == GOOD["descriptors"][:5]
    # cached: a second run does not call the model
    again = ScriptedLLM([])
    assert describe_labels(["a red circle"], again, config, tmp_path / "cache") == records
    assert again.prompts == []
    # another model is another cache entry
    other = ScriptedLLM([json.dumps(GOOD)])
    describe_labels(
        ["a red circle"], other, DescribeConfig(model="hf:x/y", descriptors=5), tmp_path / "cache"
    )
    assert len(other.prompts) == 1


def test_bad_json_twice_is_a_clear_error(tmp_path):
    llm = ScriptedLLM(["{oops", "still {not json"])
    with pytest.raises(ModelError, match=r"'a red circle' is not a valid description.*--from"):
        describe_labels(["a red circle"], llm, DescribeConfig(model="hf:t/s"), tmp_path)
    assert not list(tmp_path.glob("*.json"))  # nothing cached


def test_real_generation_from_tiny_model_gives_clear_error(tmp_path):
    """The world LVLM's language model really generates (greedy) text for the describe prompt;
    a model that small cannot write valid JSON, so the run must end with the one-line error."""
    from zsar_cli.backends import load_text_generator

    gen = load_text_generator("builtin:world-lvlm", device="cpu")
    answers = gen.generate_text(["Describe a red circle as JSON."], max_new_tokens=12)
    assert isinstance(answers[0], str)
    again = gen.generate_text(["Describe a red circle as JSON."], max_new_tokens=12)
    assert answers == again  # greedy decoding is deterministic
    labels = tmp_path / "labels.txt"
    labels.write_text("a red circle\n")
    config = DescribeConfig(
        model="builtin:world-lvlm",
        max_new_tokens=24,
        device="cpu",
        cache_dir=str(tmp_path / "cache"),
    )
    with pytest.raises(ModelError, match="not a valid description after a stricter retry"):
        stage.run(labels, tmp_path / "d.parquet", config, generator=gen)
    assert not (tmp_path / "d.parquet").exists()


def test_from_file_roundtrip_and_cli(tmp_path, runner):
    src = tmp_path / "hand.json"
    src.write_text(
        json.dumps(
            [
                {"label": "a red circle", **GOOD},
                {"label": "a blue square", **GOOD, "descriptors": GOOD["descriptors"][:4]},
            ]
        )
    )
    labels = tmp_path / "labels.txt"
    labels.write_text("a blue square\na red circle\n")
    out = tmp_path / "desc.parquet"
    result = runner.invoke(
        app, ["describe", "--labels", str(labels), "--from", str(src), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    art = read_artifact(out, "descriptions")
    rows = art.table.to_pylist()
    assert [r["label"] for r in rows] == ["a blue square", "a red circle"]
    assert rows[0]["descriptors"] == GOOD["descriptors"][:4]
    assert rows[1]["start_question"].endswith("?")
    # the artifact is itself accepted by --from
    out2 = tmp_path / "desc2.parquet"
    result = runner.invoke(app, ["describe", "--from", str(out), "-o", str(out2)])
    assert result.exit_code == 0, result.output
    assert read_artifact(out2).table.to_pylist() == rows


def test_from_file_missing_label_and_bad_record(tmp_path, runner):
    src = tmp_path / "hand.json"
    src.write_text(json.dumps([{"label": "a red circle", **GOOD, "descriptors": []}]))
    labels = tmp_path / "labels.txt"
    labels.write_text("a red circle\na blue square\n")
    result = runner.invoke(
        app,
        [
            "describe",
            "--labels",
            str(labels),
            "--from",
            str(src),
            "-o",
            str(tmp_path / "o.parquet"),
        ],
    )
    assert result.exit_code == 1
    assert "no description for label(s) 'a blue square'" in result.output
    labels.write_text("a red circle\n")
    result = runner.invoke(
        app,
        [
            "describe",
            "--labels",
            str(labels),
            "--from",
            str(src),
            "-o",
            str(tmp_path / "o.parquet"),
        ],
    )
    assert result.exit_code == 1
    assert "'descriptors' has 0 item(s)" in result.output


def test_offline_unknown_model_is_one_line(tmp_path, runner, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    labels = tmp_path / "labels.txt"
    labels.write_text("a red circle\n")
    result = runner.invoke(
        app,
        [
            "describe",
            "--labels",
            str(labels),
            "--model",
            "hf:nobody/no-such-model",
            "-o",
            str(tmp_path / "o.parquet"),
        ],
    )
    assert result.exit_code == 1
    assert "not in the Hugging Face cache" in result.output
    assert "Traceback" not in result.output
