"""The schema-constrained decoder on its own: token texts, the layout, caps, the token budget.

Scores are random or adversarial (no model), so every property must hold whatever a model
prefers: each row ends with EOS and a record `RecordSchema.parse` accepts, within the budget.
"""

from __future__ import annotations

import json

import pytest
import torch

from zsar_cli.backends.json_constraint import (
    BudgetError,
    RecordLogitsProcessor,
    RecordMachine,
    TokenTable,
    token_texts,
)
from zsar_cli.backends.text_base import ListField, RecordError, RecordSchema, StringField

from .text_lm import build_tokenizer

SCHEMA = RecordSchema(
    (
        StringField("description", 60),
        ListField("descriptors", 12, 2, 5),
        StringField("start_question", 30, question=True),
        StringField("end_question", 30, question=True),
    )
)


@pytest.fixture(scope="module")
def bpe():
    return build_tokenizer(512)


@pytest.fixture(scope="module")
def metaspace():
    """A SentencePiece-style tokenizer (Metaspace: "▁word"), which drops a token's leading
    space when the token is decoded alone."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from .text_lm import corpus

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    alphabet = [chr(c) for c in range(32, 127)]
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "</s>"],
        initial_alphabet=alphabet,
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>")


def run(machine: RecordMachine, scores_for, rows: int = 4) -> RecordLogitsProcessor:
    """Greedy decoding over `scores_for(step, ids)` (B×V) with the processor, like generate()."""
    proc = RecordLogitsProcessor(machine, rows)
    ids = torch.zeros((rows, 3), dtype=torch.long)
    for step in range(machine.max_new_tokens):
        scores = proc(ids, scores_for(step, ids))
        chosen = scores.argmax(-1)
        ids = torch.cat([ids, chosen[:, None]], 1)
        if all(s.done for s in proc.states):
            break
    proc(ids, torch.zeros((rows, machine.table.size)))  # apply the last token
    return proc


def check(proc: RecordLogitsProcessor, schema: RecordSchema = SCHEMA) -> list[dict]:
    records = []
    for state in proc.states:
        assert state.done, state.text
        record = schema.parse(state.text)
        assert json.loads(state.text) == {**json.loads(state.text)}  # plain JSON, no escapes
        assert "\\" not in state.text and "\n" not in state.text
        records.append(record)
    return records


def random_scores(size: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    return lambda _step, ids: torch.randn((ids.shape[0], size), generator=gen)


@pytest.mark.parametrize("seed", range(6))
def test_random_scores_always_give_a_record(bpe, seed):
    table = TokenTable.from_tokenizer(bpe, len(bpe) + 40)  # a model vocab larger than the tokenizer
    machine = RecordMachine(SCHEMA, table, 160, [bpe.eos_token_id])
    proc = run(machine, random_scores(table.size, seed))
    for record in check(proc):
        assert 2 <= len(record["descriptors"]) <= 5
        assert record["start_question"].endswith("?") and len(record["start_question"]) <= 30
        assert len(record["description"]) <= 60
        assert not record["description"].startswith(" ")


def test_the_shortest_budget_is_enough_and_one_less_is_refused(bpe):
    table = TokenTable.from_tokenizer(bpe)
    machine = RecordMachine(SCHEMA, table, 1000, [bpe.eos_token_id])
    least = machine.need(machine.start())
    with pytest.raises(BudgetError, match=f"at least {least} new tokens") as info:
        RecordMachine(SCHEMA, table, least - 1, [bpe.eos_token_id])
    assert info.value.needed == least
    tight = RecordMachine(SCHEMA, table, least, [bpe.eos_token_id])
    for seed in range(3):
        check(run(tight, random_scores(table.size, seed)))


def _prefer(table: TokenTable, wanted) -> torch.Tensor:
    """Scores that rank every token with `wanted(text)` above all others."""
    return torch.tensor([5.0 if t is not None and wanted(t) else 0.0 for t in table.texts])


@pytest.mark.parametrize(
    "wanted",
    [
        lambda t: t.startswith('"'),  # wants to close every string at once
        lambda t: t.isspace(),  # wants blank strings
        lambda t: "?" in t,  # wants questions everywhere
        lambda t: t.isalpha() and len(t) > 3,  # never wants to stop writing
        lambda t: t in ("]", '"]', ", ", "}"),  # wants to end lists and the record early
    ],
)
def test_adversarial_preferences_still_give_a_record(bpe, wanted):
    table = TokenTable.from_tokenizer(bpe)
    machine = RecordMachine(SCHEMA, table, 120, [bpe.eos_token_id])
    bias = _prefer(table, wanted)
    noise = random_scores(table.size, 0)
    (record,) = check(run(machine, lambda s, ids: bias + 0.1 * noise(s, ids), rows=1))
    assert record["description"].strip()


def test_eos_preferred_everywhere_and_penalised_elsewhere(bpe):
    """A model that wants to stop at once still writes the record; an allowed token that another
    processor set to -inf stays choosable."""
    table = TokenTable.from_tokenizer(bpe)
    machine = RecordMachine(SCHEMA, table, 120, [bpe.eos_token_id])

    def scores(_step, ids):
        s = torch.full((ids.shape[0], table.size), float("-inf"))
        s[:, bpe.eos_token_id] = 10.0
        return s

    check(run(machine, scores, rows=2))


def test_batched_rows_are_independent_and_deterministic(bpe):
    table = TokenTable.from_tokenizer(bpe)
    machine = RecordMachine(SCHEMA, table, 140, [bpe.eos_token_id])
    base = torch.randn((3, table.size), generator=torch.Generator().manual_seed(1))

    def per_row(rows):
        # row r's scores depend on the row's own last token only
        return lambda _s, ids: base[rows] + 3 * torch.sin(ids[:, -1:].float() * base[rows])

    together = run(machine, per_row([0, 1, 2]), rows=3).texts()
    again = run(machine, per_row([0, 1, 2]), rows=3).texts()
    alone = [run(machine, per_row([r]), rows=1).texts()[0] for r in range(3)]
    assert together == again == alone


def test_descriptor_count_bounds_and_caps(bpe):
    table = TokenTable.from_tokenizer(bpe)
    schema = RecordSchema((ListField("items", 6, 3, 3), StringField("q", 5, question=True)))
    machine = RecordMachine(schema, table, 80, [bpe.eos_token_id])
    for seed in range(4):
        for record in check(run(machine, random_scores(table.size, seed)), schema):
            assert len(record["items"]) == 3
            assert all(len(x) <= 6 for x in record["items"])
            assert len(record["q"]) <= 5 and record["q"].endswith("?")
            assert not record["q"].startswith("?")


def test_token_texts_keep_leading_spaces_of_sentencepiece_pieces(metaspace):
    texts = token_texts(metaspace)
    word = next(t for t in metaspace.get_vocab() if t.startswith("▁") and len(t) > 3)
    assert texts[metaspace.convert_tokens_to_ids(word)] == " " + word[1:]
    assert texts[metaspace.eos_token_id] is None  # special tokens are never chosen
    table = TokenTable(texts)
    machine = RecordMachine(SCHEMA, table, 200, [metaspace.eos_token_id])
    check(run(machine, random_scores(table.size, 3)))


def test_token_texts_drop_partial_characters(bpe):
    texts = token_texts(bpe)
    byte_ids = bpe.convert_tokens_to_ids(["Ã", "Ä"])  # lone bytes of 2-byte characters
    assert all(texts[i] is None for i in byte_ids)
    assert texts[bpe.convert_tokens_to_ids("a")] == "a"
    assert texts[bpe.convert_tokens_to_ids("Ġ")] == " "


def test_tokenizer_that_cannot_spell_the_layout_is_refused():
    table = TokenTable(["a", "b", "?", " ", '"'])  # no "{", so no record can start
    with pytest.raises(ValueError, match="cannot spell the record layout"):
        RecordMachine(SCHEMA, table, 500, [0])


def test_schema_checks_and_json_schema():
    good = {"description": "x  y", "descriptors": ["a", "b"], "start_question": "Is it?"}
    good["end_question"] = "Done?"
    assert SCHEMA.check(good)["description"] == "x y"
    for bad, reason in [
        ({**good, "descriptors": ["a"]}, "1 item"),
        ({**good, "start_question": "Is it"}, "end with '?'"),
        ({**good, "description": " "}, "empty"),
        ({**good, "description": "x" * 61}, "longer than 60"),
        ({k: v for k, v in good.items() if k != "end_question"}, "missing 'end_question'"),
        ([good], "not an object"),
    ]:
        with pytest.raises(RecordError, match=reason):
            SCHEMA.check(bad)
    with pytest.raises(RecordError, match="invalid JSON"):
        SCHEMA.parse('{"description": ')
    schema = SCHEMA.json_schema()
    assert schema["required"] == ["description", "descriptors", "start_question", "end_question"]
    assert schema["properties"]["descriptors"]["minItems"] == 2
    assert schema["properties"]["end_question"]["pattern"] == r"\?$"
    assert schema["additionalProperties"] is False
