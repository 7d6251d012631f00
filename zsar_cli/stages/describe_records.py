"""The records `describe` asks for and checks: the schema every answer is decoded under, the
ZEAL-style prompt, validation of hand-written and generated records, and the quality guards
(distinct, short descriptors; questions that name the label's subject; regenerate once, then
repair). Pure functions: no model, no files.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from zsar_cli.backends.text_base import ListField, RecordError, RecordSchema, StringField
from zsar_cli.errors import ModelError

# Bump when the prompt, the schema's caps or the guards change: it is part of the cache key of
# every generated record and of the artifact.
PROMPT_VERSION = 2
# The schema's bounds around --descriptors N: at least min(4, N) and at most max(12, N) items
# are decoded (spares survive de-duplication); the record keeps the first N distinct ones.
MIN_DESCRIPTORS = 4
MAX_DESCRIPTORS = 12
DESCRIPTION_CHARS = 240
DESCRIPTOR_CHARS = 48
QUESTION_CHARS = 140
DESCRIPTOR_WORDS = 6
HAND_MIN_DESCRIPTORS = 3  # hand-written (--from) records

RECORD_COLUMNS = ("label", "description", "descriptors", "start_question", "end_question")
GUARD_COLUMNS = ("status", "attempts", "notes")

# ZEAL's stage 1 asks an LLM, per action, for a description and for questions about the first
# and the last moment of the action, shown a few worked examples. This wording is our own.
PROMPT = """\
A video search system looks for actions in single frames. Describe the action named last as \
one JSON object with these keys:
"description": one sentence on what a viewer sees while the action happens;
"descriptors": {count} different visual attributes of the action, 2 to 4 words each;
"start_question": a yes/no question about one frame, true only at the very start of the action;
"end_question": a yes/no question about one frame, true only at the very end of the action.
Both questions must name who or what the action is about.

Action: long jump
{{"description": "An athlete sprints down a runway, takes off from a board and lands in a sand \
pit.", "descriptors": ["sprinting athlete", "take-off board", "legs thrust forward", "sand pit", \
"running track"], "start_question": "Is the long jumper sprinting down the runway toward the \
board?", "end_question": "Is the long jumper landing in the sand pit?"}}

Action: opening a bottle
{{"description": "A hand twists or pries the cap off a bottle held upright.", "descriptors": \
["hand gripping a cap", "twisting wrist", "upright bottle", "loosened cap", "bottle opener"], \
"start_question": "Is a hand holding the cap of a closed bottle?", "end_question": "Is the \
bottle open with its cap removed?"}}

Action: parallel parking
{{"description": "A car reverses into a gap between two parked cars along a curb.", \
"descriptors": ["reversing car", "gap at the curb", "turned front wheels", "row of parked \
cars", "driver looking back"], "start_question": "Is the car stopped ahead of the empty parking \
gap?", "end_question": "Is the car parked straight along the curb between two cars?"}}

Action: {action}"""
STRONGER = (
    "\n\nAn earlier answer for this action was rejected ({reasons}). Write a new one: both "
    "questions must contain {words}, and every descriptor must be different."
)
# Repairs for a question no answer got right: it names the whole label, so it passes the check.
START_TEMPLATE = 'Does this frame show the very start of "{action}"?'
END_TEMPLATE = 'Does this frame show the very end of "{action}"?'

# Words a label's subject is never matched on (function words and placeholders for "someone").
STOPWORDS = frozenset(
    """a an the of on in into onto at to from for with without by and or up down off out over
    under its his her their one some someone somebody something person people man woman thing
    things is are be being do does doing""".split()  # noqa: SIM905 (a word list reads better)
)


def record_schema(descriptors: int) -> RecordSchema:
    """The record every model answer is decoded under (and checked against)."""
    return RecordSchema(
        (
            StringField("description", DESCRIPTION_CHARS),
            ListField(
                "descriptors",
                DESCRIPTOR_CHARS,
                min(MIN_DESCRIPTORS, descriptors),
                max(MAX_DESCRIPTORS, descriptors),
            ),
            StringField("start_question", QUESTION_CHARS, question=True),
            StringField("end_question", QUESTION_CHARS, question=True),
        )
    )


# ---------------------------------------------------------------------------------------------
# Hand-written records (--from, cache entries)


class DescriptionFormatError(ValueError):
    """A record that is not a usable description (the reason is the message)."""


def validate_record(record: Any, label: str, descriptors: int) -> dict[str, Any]:
    """A clean description record (whitespace collapsed, "?" added to questions), or
    DescriptionFormatError naming what is wrong. For records written by people."""
    if not isinstance(record, dict):
        raise DescriptionFormatError("the JSON value is not an object")
    out: dict[str, Any] = {"label": label}
    for key in ("description", "start_question", "end_question"):
        value = record.get(key)
        if not isinstance(value, str) or not value.strip():
            raise DescriptionFormatError(f"missing or empty {key!r}")
        out[key] = " ".join(value.split())
    items = record.get("descriptors")
    if not isinstance(items, list) or not all(isinstance(d, str) for d in items):
        raise DescriptionFormatError("'descriptors' is not a list of strings")
    clean = [" ".join(d.split()) for d in items if d.strip()]
    need = min(HAND_MIN_DESCRIPTORS, descriptors)
    if len(clean) < need:
        raise DescriptionFormatError(
            f"'descriptors' has {len(clean)} item(s); need at least {need}"
        )
    out["descriptors"] = clean[:descriptors]
    for key in ("start_question", "end_question"):
        if not out[key].endswith("?"):
            out[key] += "?"
    return out


# ---------------------------------------------------------------------------------------------
# Prompts and the subject check


def action_text(label: str) -> str:
    from zsar_cli.labels import label_text  # labels imports numpy; the CLI imports this module

    return label_text(label)


def prompt_for(label: str, descriptors: int, reasons: Sequence[str] = ()) -> str:
    """The prompt for one label; with `reasons`, the stronger one of a regeneration."""
    action = action_text(label)
    text = PROMPT.format(action=action, count=descriptors)
    if reasons:
        words = " or ".join(f'"{w}"' for w in subject_words(label)) or f'"{action}"'
        text += STRONGER.format(reasons="; ".join(reasons), words=words)
    return text


def stem(word: str) -> str:
    """A crude English stem: plural and verb endings off (-ies/-ied → y, -s, -es, -ing, -ed,
    -er), then a doubled final consonant and a final e (running → run, dancer → danc)."""
    w = word.lower()
    for suffix, repl, shortest in (
        ("ies", "y", 5),
        ("ied", "y", 5),
        ("ing", "", 5),
        ("ed", "", 4),
        ("er", "", 5),
        ("es", "", 4),
        ("s", "", 4),
    ):
        if len(w) >= shortest and w.endswith(suffix) and not (suffix == "s" and w.endswith("ss")):
            w = w[: -len(suffix)] + repl
            break
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiouls":
        w = w[:-1]
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    return w


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W_]+", text.lower())


def subject_words(label: str) -> tuple[str, ...]:
    """The label's content words (what a question must name one of): its words without
    `STOPWORDS` and words under 3 letters, or all its words when that leaves none."""
    words = _words(action_text(label))
    content = [w for w in words if w not in STOPWORDS and len(w) >= 3]
    return tuple(dict.fromkeys(content or words))


def same_word(a: str, b: str) -> bool:
    """Same stem, or one word a prefix of the other (both at least 4 letters: water/watering)."""
    if stem(a) == stem(b):
        return True
    return min(len(a), len(b)) >= 4 and (a.startswith(b) or b.startswith(a))


def mentions_subject(question: str, label: str) -> bool:
    """Whether `question` names the label's subject: one of its words matches (`same_word`,
    case-insensitive) one of `subject_words(label)`. A label without words always passes."""
    wanted = subject_words(label)
    have = _words(question)
    return not wanted or any(same_word(w, h) for w in wanted for h in have)


# ---------------------------------------------------------------------------------------------
# Quality guards


@dataclass
class Attempt:
    """One model answer after the guards: the cleaned record (None if it did not parse), what
    was repaired in it, and why it is rejected (empty: accepted)."""

    record: dict[str, Any] | None
    repairs: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return self.record is not None and not self.reasons


def _descriptor_key(text: str) -> str:
    return " ".join(_words(text))


def guard(record: dict[str, Any], label: str, descriptors: int) -> Attempt:
    """De-duplicate and shorten the descriptors; reject a record whose questions do not name the
    subject or that has fewer than min(MIN_DESCRIPTORS, N) distinct descriptors."""
    kept: list[str] = []
    seen: set[str] = set()
    dropped = shortened = 0
    for item in record["descriptors"]:
        words = item.split()
        if len(words) > DESCRIPTOR_WORDS:
            item = " ".join(words[:DESCRIPTOR_WORDS])
            shortened += 1
        key = _descriptor_key(item)
        if not key or key in seen:
            dropped += 1
            continue
        seen.add(key)
        kept.append(item)
    out = {**record, "label": label, "descriptors": kept[:descriptors]}
    attempt = Attempt(out)
    if dropped:
        attempt.repairs.append(f"descriptors: {dropped} duplicate or empty dropped")
    if shortened:
        attempt.repairs.append(f"descriptors: {shortened} cut to {DESCRIPTOR_WORDS} words")
    need = min(MIN_DESCRIPTORS, descriptors)
    if len(kept) < need:
        attempt.reasons.append(f"only {len(kept)} distinct descriptors, need {need}")
    for key in ("start_question", "end_question"):
        if not mentions_subject(out[key], label):
            attempt.reasons.append(f"{key} does not name the subject")
    return attempt


def check_answer(text: str, schema: RecordSchema, label: str, descriptors: int) -> Attempt:
    try:
        record = schema.parse(text)
    except RecordError as exc:
        return Attempt(None, reasons=[f"not a valid record: {exc}"])
    return guard(record, label, descriptors)


def settle(label: str, descriptors: int, first: Attempt, second: Attempt | None) -> dict[str, Any]:
    """The row a label ends with: the first accepted answer, or a repaired one."""
    notes = list(first.repairs)
    if first.accepted:
        assert first.record is not None
        return _row(first.record, "repaired" if notes else "ok", 1, notes)
    assert second is not None
    notes = [f"first answer rejected: {'; '.join(first.reasons)}", *second.repairs]
    if second.accepted:
        assert second.record is not None
        return _row(second.record, "repaired" if second.repairs else "regenerated", 2, notes)
    notes.insert(1, f"second answer rejected: {'; '.join(second.reasons)}")
    parsed = [a.record for a in (second, first) if a.record is not None]
    if not parsed:
        raise ModelError(
            f"answers for label {label!r} are not valid records ({second.reasons[0]}); use a "
            "model that can follow a JSON schema, or write the descriptions yourself and pass "
            "--from FILE"
        )
    record = dict(parsed[0])
    record["descriptors"] = max((r["descriptors"] for r in parsed), key=len)
    need = min(MIN_DESCRIPTORS, descriptors)
    action = action_text(label)
    if not record["descriptors"]:
        record["descriptors"] = [action]
        notes.append("descriptors: none usable; the label itself used")
    elif len(record["descriptors"]) < need:
        notes.append(f"descriptors: kept {len(record['descriptors'])} distinct (fewer than {need})")
    for key, template in (("start_question", START_TEMPLATE), ("end_question", END_TEMPLATE)):
        good = [r[key] for r in parsed if mentions_subject(r[key], label)]
        if good:
            record[key] = good[0]
        else:
            record[key] = template.format(action=action)
            notes.append(f"{key}: template (no answer named the subject)")
    return _row(record, "repaired", 2, notes)


def _row(record: dict[str, Any], status: str, attempts: int, notes: list[str]) -> dict[str, Any]:
    row = {name: record[name] for name in RECORD_COLUMNS}
    return {**row, "status": status, "attempts": attempts, "notes": notes}
