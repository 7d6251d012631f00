"""`describe`: prompts, quality guards, regeneration, cache, `--from`, and real constrained
generation from random-init text LLMs (a shrunk SmolLM2 here, its real size behind `slow`)."""

from __future__ import annotations

import json
import time

import pytest

from zsar_cli.artifacts import read_artifact
from zsar_cli.cli.app import app
from zsar_cli.errors import ConfigError, ModelError
from zsar_cli.stages import describe as stage
from zsar_cli.stages.describe import (
    DescribeConfig,
    describe_labels,
    guard,
    mentions_subject,
    prompt_for,
    record_schema,
    stem,
    subject_words,
)

from .text_lm import build_text_lm

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
    "start_question": "Is a red circle just appearing in the frame?",
    "end_question": "Is the red circle about to leave the frame?",
}
OFF_SUBJECT = {**GOOD, "start_question": "Is it starting?", "end_question": "Is it over?"}


def good(label: str) -> dict:
    """GOOD with questions that name `label`."""
    return {**GOOD, "start_question": f"Is {label} starting?", "end_question": f"Is {label} over?"}


class ScriptedGenerator:
    """A stand-in `RecordGenerator` that returns scripted answers in order and records the
    prompts and batches it was given (parsing, guards and caching are under test, not a model)."""

    def __init__(self, answers, spec="scripted:test", revision="r1"):
        self.answers = [a if isinstance(a, str) else json.dumps(a) for a in answers]
        self.spec = spec
        self.revision = revision
        self.prompts: list[str] = []
        self.batches: list[int] = []

    def generate_records(self, prompts, schema, max_new_tokens):
        self.prompts += prompts
        self.batches.append(len(prompts))
        return [self.answers.pop(0) for _ in prompts]


def config(**kwargs) -> DescribeConfig:
    return DescribeConfig(**{"model": "scripted:test", **kwargs})


# ---------------------------------------------------------------------------------------------
# Prompt and subject check


def test_prompt_follows_zeal_stage_one():
    text = prompt_for("PlayingGuitar", 8)
    assert text.count("Action: ") == 4  # three worked actions, then the label
    assert text.rstrip().endswith("Action: playing guitar")
    assert "8 different visual attributes" in text
    assert "very start" in text and "very end" in text
    stronger = prompt_for("PlayingGuitar", 8, ["start_question does not name the subject"])
    assert stronger.startswith(text)
    assert 'contain "playing" or "guitar"' in stronger


@pytest.mark.parametrize(
    ("a", "b"),
    [("running", "run"), ("dancer", "dance"), ("boxes", "boxing"), ("bowler", "bowls")],
)
def test_stem_joins_plural_and_verb_forms(a, b):
    assert stem(a) == stem(b)


def test_subject_words_and_mentions():
    assert subject_words("ApplyEyeMakeup") == ("apply", "eye", "makeup")
    assert subject_words("a person riding a horse") == ("riding", "horse")
    assert subject_words("Yo Yo") == ("yo",)  # only short words: all of them
    assert mentions_subject("Is the rider mounting?", "riding a horse")
    assert mentions_subject("Is the HORSES' gate open?", "riding a horse")
    assert mentions_subject("Are the plants being watered?", "watering plants")
    assert not mentions_subject("Is the person smiling?", "riding a horse")


def test_guard_dedupes_and_cuts_descriptors_and_rejects_off_subject():
    record = {
        **GOOD,
        "descriptors": [
            "Red color",
            "red  color.",
            "a very long phrase of far too many words",
            "x",
        ],
    }
    attempt = guard(record, "a red circle", 8)
    assert attempt.record is not None
    assert attempt.record["descriptors"] == ["Red color", "a very long phrase of far", "x"]
    assert attempt.repairs == [
        "descriptors: 1 duplicate or empty dropped",
        "descriptors: 1 cut to 6 words",
    ]
    assert attempt.reasons == ["only 3 distinct descriptors, need 4"]
    off = guard(OFF_SUBJECT, "a red circle", 8)
    assert off.reasons == [
        "start_question does not name the subject",
        "end_question does not name the subject",
    ]


# ---------------------------------------------------------------------------------------------
# Regeneration, repair, cache (scripted answers)


def test_accepted_first_answer(tmp_path):
    gen = ScriptedGenerator([GOOD])
    result = describe_labels(["a red circle"], gen, config(descriptors=5), tmp_path)
    (row,) = result.rows
    assert (row["status"], row["attempts"], row["notes"]) == ("ok", 1, [])
    assert row["descriptors"] == GOOD["descriptors"][:5]
    assert (result.generated, result.first_try_valid, result.regenerated) == (1, 1, 0)


def test_off_subject_questions_are_regenerated_with_a_stronger_prompt(tmp_path):
    gen = ScriptedGenerator([OFF_SUBJECT, GOOD])
    result = describe_labels(["a red circle"], gen, config(), tmp_path)
    (row,) = result.rows
    assert len(gen.prompts) == 2
    assert "was rejected (start_question does not name the subject" in gen.prompts[1]
    assert (row["status"], row["attempts"]) == ("regenerated", 2)
    assert row["notes"][0].startswith("first answer rejected: start_question")
    assert (result.regenerated, result.repaired) == (1, 0)


def test_what_fails_twice_is_repaired_and_recorded(tmp_path):
    second = {**OFF_SUBJECT, "end_question": "Has the circle left the frame?"}
    gen = ScriptedGenerator([OFF_SUBJECT, second])
    result = describe_labels(["a red circle"], gen, config(), tmp_path)
    (row,) = result.rows
    assert row["status"] == "repaired" and row["attempts"] == 2
    assert row["start_question"] == 'Does this frame show the very start of "a red circle"?'
    assert row["end_question"] == "Has the circle left the frame?"  # the good one is kept
    assert "start_question: template (no answer named the subject)" in row["notes"]
    assert any(n.startswith("second answer rejected") for n in row["notes"])
    assert result.repaired == 1


def test_invalid_answers_of_an_unconstrained_backend(tmp_path):
    """A backend that cannot constrain decoding (a served model without JSON-schema support):
    one bad answer is regenerated; two are a clear error, and nothing is cached."""
    gen = ScriptedGenerator(["Sure! {oops", GOOD])
    result = describe_labels(["a red circle"], gen, config(), tmp_path)
    assert result.first_try_valid == 0 and result.rows[0]["status"] == "regenerated"
    assert "not a valid record: invalid JSON" in result.rows[0]["notes"][0]
    bad = ScriptedGenerator(["{oops", "still {not json"])
    with pytest.raises(ModelError, match=r"'a blue square' are not valid records.*--from"):
        describe_labels(["a blue square"], bad, config(), tmp_path / "c2")
    assert not (tmp_path / "c2").exists()


def test_cache_reuse_and_what_the_key_holds(tmp_path):
    cache = tmp_path / "cache"
    labels = ["a red circle", "a blue square"]
    answers = [good(label) for label in labels]
    first = describe_labels(labels, ScriptedGenerator(answers), config(), cache)
    again = ScriptedGenerator([])
    second = describe_labels(labels, again, config(), cache)
    assert again.prompts == [] and second.rows == first.rows and second.cached == 2
    # another model, revision, budget or descriptor count is another entry
    for gen, cfg in [
        (ScriptedGenerator([GOOD]), config(model="hf:x/y")),
        (ScriptedGenerator([GOOD], revision="r2"), config()),
        (ScriptedGenerator([GOOD]), config(max_new_tokens=200)),
        (ScriptedGenerator([GOOD]), config(descriptors=6)),
    ]:
        assert describe_labels(labels[:1], gen, cfg, cache).generated == 1
    # a corrupt entry is regenerated
    for path in cache.glob("*.json"):
        path.write_text("{not json")
    assert describe_labels(labels, ScriptedGenerator(answers), config(), cache).cached == 0


def test_batches_of_similar_length_cached_as_they_finish(tmp_path):
    labels = [f"label {'x' * (i % 7)} {i}" for i in range(10)]
    gen = ScriptedGenerator([good("label")] * 10)
    describe_labels(labels, gen, config(batch_size=4), tmp_path)
    assert gen.batches == [4, 4, 2]
    lengths = [len(p) for p in gen.prompts]
    assert lengths == sorted(lengths)

    class Dies(ScriptedGenerator):
        def generate_records(self, prompts, schema, max_new_tokens):
            if self.batches:
                raise KeyboardInterrupt
            return super().generate_records(prompts, schema, max_new_tokens)

    cache = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        describe_labels(labels, Dies([good("label")] * 4), config(batch_size=4), cache)
    rerun = describe_labels(
        labels, ScriptedGenerator([good("label")] * 6), config(batch_size=4), cache
    )
    assert (rerun.cached, rerun.generated) == (4, 6)


def test_hundreds_of_labels_in_batches(tmp_path):
    """K600-sized label sets: 600 labels in batches of 32, cached, then all from the cache."""
    labels = [f"action number {i}" for i in range(600)]
    gen = ScriptedGenerator([good("action number")] * 600)
    result = describe_labels(labels, gen, config(batch_size=32), tmp_path)
    assert gen.batches == [32] * 18 + [24]
    assert result.generated == 600 and [r["label"] for r in result.rows] == labels
    assert (
        describe_labels(labels, ScriptedGenerator([]), config(batch_size=32), tmp_path).cached
        == 600
    )


# ---------------------------------------------------------------------------------------------
# Real constrained generation


def labels_50() -> list[str]:
    verbs = ["playing", "riding", "cutting", "throwing", "washing"]
    things = ["guitar", "horse", "bread", "ball", "dishes", "kite", "bike", "cake", "rope", "car"]
    return [f"{v} {t}" for v in verbs for t in things]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    """SmolLM2's family (Llama, ChatML, byte-level BPE) shrunk: 2 layers, width 64."""
    return build_text_lm(tmp_path_factory.mktemp("lm") / "tiny-smollm2", "tiny")


def test_random_init_llm_writes_valid_records_for_50_labels_first_try(tiny_lm, tmp_path):
    from zsar_cli.backends import load_text_generator

    gen = load_text_generator(f"hf:{tiny_lm}", device="cpu")
    assert gen.revision.startswith("files:")
    # one batch, and a budget a little over the 41 tokens the shortest record takes with this
    # tokenizer (random weights run every string to its cap or the budget)
    cfg = DescribeConfig(model=f"hf:{tiny_lm}", max_new_tokens=48, batch_size=50)
    labels = labels_50()
    result = describe_labels(labels, gen, cfg, tmp_path / "cache")
    assert (result.generated, result.first_try_valid) == (50, 50)  # 100% on the first try
    schema = record_schema(cfg.descriptors)
    for row in result.rows:
        assert row["description"] and row["descriptors"]
        assert row["start_question"].endswith("?") and row["end_question"].endswith("?")
        assert len(row["description"]) <= schema.fields[0].max_chars
        # random weights never name the subject: regenerated once, then repaired
        assert (row["status"], row["attempts"]) == ("repaired", 2)
        assert mentions_subject(row["start_question"], row["label"])
    # the cache answers the rerun without generating anything
    start = time.perf_counter()
    rerun = describe_labels(labels, gen, cfg, tmp_path / "cache")
    assert rerun.cached == 50 and rerun.rows == result.rows
    assert time.perf_counter() - start < 5


def test_records_are_pure_greedy_and_prefix_sharing_changes_nothing(tiny_lm):
    """The shared-prompt-prefix KV reuse gives the plain path's records; sampling and penalties
    in the model's generation_config.json are ignored (answers depend on weights and prompt)."""
    from zsar_cli.backends import load_text_generator

    gen = load_text_generator(f"hf:{tiny_lm}", device="cpu")
    schema = record_schema(8)
    prompts = [prompt_for(label, 8) for label in ("riding horse", "cutting bread", "x")]
    shared = gen.generate_records(prompts, schema, 48)
    assert gen._prefix is not None and gen._prefix[0].endswith('cars?"}\n\n')
    assert gen.generate_records(prompts[:1], schema, 48) == shared[:1]  # cached prefix, 1 row
    gen.share_prefix = False
    assert gen.generate_records(prompts, schema, 48) == shared
    own = gen.model.generation_config
    own.do_sample, own.temperature, own.repetition_penalty, own.no_repeat_ngram_size = (
        True, 2.0, 3.0, 2,
    )  # fmt: skip
    assert gen.generate_records(prompts, schema, 48) == shared
    assert gen.model.generation_config is own


def test_sliding_window_model_decodes_without_prefix_sharing(tiny_lm):
    """A cache that cannot continue from a padded prefix (sliding window) turns sharing off."""
    import torch
    from transformers import AutoTokenizer, MistralConfig, MistralForCausalLM

    from zsar_cli.backends.hf_text import HFTextGenerator

    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    tokenizer.padding_side = "left"
    config = MistralConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, sliding_window=64,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    gen = HFTextGenerator("hf:random/mistral", MistralForCausalLM(config).eval(), tokenizer)
    schema = record_schema(8)
    answers = gen.generate_records([prompt_for(x, 8) for x in ("riding horse", "x")], schema, 48)
    assert not gen.share_prefix
    assert all(schema.parse(a) for a in answers)


def test_builtin_world_model_writes_valid_records(tmp_path):
    """The world LVLM's language model (a different family and tokenizer) through `builtin:`."""
    from zsar_cli.backends import load_text_generator

    gen = load_text_generator("builtin:world-lvlm", device="cpu")
    schema = record_schema(8)
    answers = gen.generate_records([prompt_for("a red circle", 8)] * 2, schema, 80)
    assert answers[0] == answers[1]  # greedy: deterministic
    assert schema.parse(answers[0])["start_question"].endswith("?")


def test_cli_describe_then_encode_text_and_query_lvlm(tiny_lm, tmp_path, runner):
    """A descriptions artifact written by `describe` feeds `encode-text --descriptions` and
    `query-lvlm --descriptions` as it is."""
    from .test_query_lvlm_cli import fresh_frames

    labels = tmp_path / "labels.txt"
    labels.write_text("playing guitar\nriding horse\ncutting bread\n")
    out = tmp_path / "desc.parquet"
    args = ["describe", "-l", str(labels), "-o", str(out), "-m", f"hf:{tiny_lm}"]
    args += ["--max-new-tokens", "48", "--device", "cpu", "--cache-dir", str(tmp_path / "c")]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "valid on the first try 3/3" in " ".join(result.output.split())
    art = read_artifact(out, "descriptions")
    assert art.meta.config["model_revision"].startswith("files:")
    rows = art.table.to_pylist()
    assert [r["status"] for r in rows] == ["repaired"] * 3
    assert all(r["notes"] for r in rows)
    again = runner.invoke(app, args)  # same settings: up to date from the cache
    assert again.exit_code == 0 and "3 from cache" in " ".join(again.output.split())

    text = tmp_path / "text.parquet"
    result = runner.invoke(
        app,
        [
            "encode-text", "-l", str(labels), "--descriptions", str(out), "-o", str(text),
            "-m", "fake:enc", "--templates", "none",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    kinds = read_artifact(text, "text_embeddings").table.column("kind").to_pylist()
    assert set(kinds) == {"descriptor"}
    frames, _ = fresh_frames(tmp_path / "frames.parquet", n_videos=2)
    answers = tmp_path / "answers.parquet"
    result = runner.invoke(
        app,
        [
            "query-lvlm", str(frames), "-o", str(answers), "-m", "fake:lvlm",
            "-l", str(labels), "--descriptions", str(out),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    asked = read_artifact(answers, "answers").table.to_pylist()
    assert {r["query_kind"] for r in asked} == {"start", "end"}
    questions = {r["question"] for r in asked}
    assert rows[0]["start_question"] in " ".join(questions)


def test_budget_too_small_is_one_line(tiny_lm, tmp_path, runner):
    labels = tmp_path / "labels.txt"
    labels.write_text("playing guitar\n")
    args = ["describe", "-l", str(labels), "-o", str(tmp_path / "d.parquet")]
    args += ["-m", f"hf:{tiny_lm}", "--max-new-tokens", "16", "--device", "cpu"]
    result = runner.invoke(app, [*args, "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 1
    assert "--max-new-tokens 16: too few for one record" in result.output
    assert "Traceback" not in result.output


def test_backend_without_records_is_refused(tmp_path):
    class FreeText:
        spec = "text:only"

        def generate_text(self, prompts, max_new_tokens=256):
            return ["{}" for _ in prompts]

    with pytest.raises(ModelError, match="cannot write records"):
        describe_labels(["a"], FreeText(), config(), tmp_path)  # type: ignore[arg-type]


@pytest.mark.slow
def test_smollm2_360m_size_random_init_50_labels():
    """SmolLM2-360M's published sizes (362 M parameters, vocab 49,152), random weights: 50
    labels' first answers are all valid records; prints labels/s on this CPU. (Regeneration and
    repair run the same decoding and are tested with the shrunk model.)"""
    import torch

    from zsar_cli.backends.hf_text import HFTextGenerator

    from .text_lm import build_model, build_tokenizer

    tokenizer = build_tokenizer(8192)
    tokenizer.padding_side = "left"
    model = build_model("smollm2-360m", tokenizer)
    assert model.get_output_embeddings().weight.shape[0] == 49152
    gen = HFTextGenerator("hf:random/smollm2-360m", model, tokenizer, revision="seed0")
    schema = record_schema(8)
    prompts = [prompt_for(label, 8) for label in labels_50()]
    start, cpu = time.perf_counter(), time.process_time()
    answers = [a for i in (0, 25) for a in gen.generate_records(prompts[i : i + 25], schema, 64)]
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert all(schema.parse(a) for a in answers) and len(answers) == 50
    print(
        f"\nSmolLM2-360M size, random init, {torch.get_num_threads()} threads, batch 25, 64 new "
        f"tokens: {50 / wall:.3f} labels/s ({wall:.0f} s wall, {cpu / 50:.1f} CPU-s per label)"
    )


def test_from_file_roundtrip_and_cli(tmp_path, runner):
    src = tmp_path / "hand.json"
    src.write_text(
        json.dumps(
            [
                {"label": "a red circle", **GOOD, "start_question": "Is a red circle here"},
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
    assert "2 descriptions read" in result.output
    art = read_artifact(out, "descriptions")
    rows = art.table.to_pylist()
    assert [r["label"] for r in rows] == ["a blue square", "a red circle"]
    assert rows[0]["descriptors"] == GOOD["descriptors"][:4]
    assert rows[1]["start_question"] == "Is a red circle here?"  # '?' added
    assert {r["status"] for r in rows} == {"given"}
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
    args = ["describe", "--labels", str(labels), "--from", str(src)]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "o.parquet")])
    assert result.exit_code == 1
    assert "no description for label(s) 'a blue square'" in result.output
    labels.write_text("a red circle\n")
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "o.parquet")])
    assert result.exit_code == 1
    assert "'descriptors' has 0 item(s)" in result.output


def test_labels_required_without_from(tmp_path):
    with pytest.raises(ConfigError, match="give --labels"):
        stage.run(None, tmp_path / "d.parquet", config())


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
