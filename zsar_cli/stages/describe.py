"""Stage `describe`: per label, a description, ~8 visual attributes and start/end yes/no questions.

Input: a labels file, and either a text model (an `hf:` causal LM, or an image-text-to-text
model's language model) or hand-written descriptions (`--from` JSON/Parquet in the same schema).
Output: a `descriptions` artifact (label, description, descriptors, start_question,
end_question, plus status, attempts and notes saying what the quality guards did) — ZEAL's
stage 1 plus description attributes.

One prompt per label (ZEAL's stage-1 structure: instructions, a few worked actions, then the
label), batched, greedy, and decoded under the record's schema (`record_schema`), so every
answer parses on the first try. Quality guards then check each record: descriptors are
de-duplicated and cut to a few words; both questions must name the label's subject
(`mentions_subject`) and at least `MIN_DESCRIPTORS` descriptors must be distinct, or the label is
regenerated once with a stronger prompt; what still fails is repaired (a question built from the
label). Finished records are cached per label under a key of the model, its revision, the
prompt and the decoding settings (`cache_path`), batch by batch, so reruns, other label sets and
interrupted runs do not regenerate them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zsar_cli import options as o
from zsar_cli.backends.text_base import ListField, RecordError, RecordSchema, StringField
from zsar_cli.errors import ConfigError, InputError, ModelError
from zsar_cli.options import ConfigBase, opt
from zsar_cli.outputs import check_output_path, note_input, scoped

if TYPE_CHECKING:
    from zsar_cli.backends.text_base import RecordGenerator

DEFAULT_MODEL = "hf:HuggingFaceTB/SmolLM2-360M-Instruct"
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


@dataclass(frozen=True)
class DescribeConfig(ConfigBase):
    """Which model writes the descriptions (or which file holds them), and how."""

    model: str = o.model(DEFAULT_MODEL, o.TEXT_MODEL_HELP)
    from_file: str | None = opt(
        None,
        "Hand-written descriptions (JSON list/{label: record} or a descriptions Parquet) instead "
        "of a model.",
        flags=("--from",),
    )
    descriptors: int = opt(8, "Visual attribute keywords per label.", min=1, max=32)
    max_new_tokens: int = opt(
        320, "Token budget per label; decoding always closes the record within it.", min=16
    )
    batch_size: int = o.batch_size(8, "Labels per generation batch.")
    device: str = o.device()
    dtype: str = o.lvlm_dtype()
    trust_remote_code: bool = o.trust_remote_code()
    cache_dir: str | None = opt(
        None,
        "Cache of generated descriptions per (label, model, prompt) "
        "[default: $ZSAR_CACHE_DIR/descriptions or ~/.cache/zsar/descriptions].",
        run_only=True,
    )

    def provenance(self) -> dict[str, object]:
        out = super().provenance()
        if self.from_file is not None:  # read, not generated: the model settings played no part
            for name in ("model", "max_new_tokens", "dtype", "trust_remote_code"):
                out.pop(name, None)
        else:
            out["prompt_version"] = PROMPT_VERSION
        return out


def default_cache_dir() -> Path:
    root = os.environ.get("ZSAR_CACHE_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "zsar"
    return base / "descriptions"


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


# ---------------------------------------------------------------------------------------------
# Generation: batches, regeneration, cache


def cache_path(
    cache_dir: Path, label: str, config: DescribeConfig, revision: str, schema: RecordSchema
) -> Path:
    """Where a label's finished row is cached: a hash of everything that decides it — the prompt
    (which holds the label and --descriptors), the model spec and revision, the decoding
    settings and schema, and PROMPT_VERSION (prompt wording and guards)."""
    key = json.dumps(
        [
            PROMPT_VERSION,
            config.model,
            revision,
            config.dtype,
            config.max_new_tokens,
            config.descriptors,
            schema.key(),
            prompt_for(label, config.descriptors),
        ]
    )
    return cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


def _cached_row(path: Path, label: str) -> dict[str, Any] | None:
    """A cached row as written by `describe_labels`, or None (missing or corrupt: regenerate)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("label") != label:
        return None
    strings = ("description", "start_question", "end_question", "status")
    lists = ("descriptors", "notes")
    if not all(isinstance(data.get(k), str) and data[k] for k in strings):
        return None
    if not all(
        isinstance(data.get(k), list) and all(isinstance(x, str) for x in data[k]) for k in lists
    ):
        return None
    if not data["descriptors"] or not isinstance(data.get("attempts"), int):
        return None
    return _row(data, data["status"], data["attempts"], data["notes"])


@dataclass
class DescribeResult:
    """Rows in label order, and what it took: labels from the cache, answers that parsed on the
    first try, regenerated and repaired labels, generation time."""

    rows: list[dict[str, Any]]
    cached: int = 0
    generated: int = 0
    first_try_valid: int = 0
    regenerated: int = 0
    repaired: int = 0
    seconds: float = 0.0


def describe_labels(
    labels: Sequence[str],
    generator: RecordGenerator,
    config: DescribeConfig,
    cache_dir: Path | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> DescribeResult:
    """Rows for `labels`: cached ones reused, the rest generated in batches of
    `config.batch_size` (similar prompt lengths together), each batch's rejected labels
    regenerated once, and each finished batch cached. `on_batch(done, total)` after each batch
    (labels generated so far, labels to generate)."""
    if not hasattr(generator, "generate_records"):
        raise ModelError(
            f"{config.model}: this backend cannot write records (no generate_records); "
            "see zsar_cli.backends.text_base.RecordGenerator"
        )
    schema = record_schema(config.descriptors)
    revision = str(getattr(generator, "revision", ""))
    rows: dict[str, dict[str, Any]] = {}
    result = DescribeResult([])
    todo: list[str] = []
    for label in labels:
        path = cache_path(cache_dir, label, config, revision, schema) if cache_dir else None
        row = _cached_row(path, label) if path is not None else None
        if row is not None:
            rows[label] = row
            result.cached += 1
        else:
            todo.append(label)
    prompts = {label: prompt_for(label, config.descriptors) for label in todo}
    # Similar lengths share a batch (less padding); the order is deterministic.
    position = {label: i for i, label in enumerate(todo)}
    order = sorted(todo, key=lambda label: (len(prompts[label]), position[label]))
    size = max(1, config.batch_size)
    start = time.perf_counter()
    for at in range(0, len(order), size):
        batch = order[at : at + size]
        answers = generator.generate_records(
            [prompts[label] for label in batch], schema, config.max_new_tokens
        )
        first = {
            label: check_answer(text, schema, label, config.descriptors)
            for label, text in zip(batch, answers, strict=True)
        }
        result.first_try_valid += sum(a.record is not None for a in first.values())
        retry = [label for label in batch if not first[label].accepted]
        second: dict[str, Attempt] = {}
        if retry:
            stronger = [
                prompt_for(label, config.descriptors, first[label].reasons) for label in retry
            ]
            again = generator.generate_records(stronger, schema, config.max_new_tokens)
            for label, text in zip(retry, again, strict=True):
                second[label] = check_answer(text, schema, label, config.descriptors)
        for label in batch:
            row = settle(label, config.descriptors, first[label], second.get(label))
            rows[label] = row
            result.regenerated += row["attempts"] == 2
            result.repaired += row["status"] == "repaired"
        if cache_dir is not None:
            from zsar_cli.jsonio import write_json

            cache_dir.mkdir(parents=True, exist_ok=True)
            for label in batch:
                path = cache_path(cache_dir, label, config, revision, schema)
                write_json(rows[label], path, force=True)
        result.generated += len(batch)
        if on_batch is not None:
            on_batch(result.generated, len(order))
    result.seconds = time.perf_counter() - start
    result.rows = [rows[label] for label in labels]
    return result


# ---------------------------------------------------------------------------------------------
# Hand-written descriptions and the artifact


def records_from_file(
    path: str | Path, labels: Sequence[str] | None, descriptors: int
) -> list[dict[str, Any]]:
    """Hand-written descriptions (JSON or a descriptions Parquet), validated; status `given`."""
    from zsar_cli.labels import load_descriptions

    loaded = load_descriptions(path)
    wanted = list(labels) if labels is not None else list(loaded)
    missing = [label for label in wanted if label not in loaded]
    if missing:
        raise InputError(
            f"--from {path}: no description for label(s) {', '.join(map(repr, missing[:5]))}"
        )
    out = []
    for label in wanted:
        d = loaded[label]
        record = {
            "description": d.description,
            "descriptors": list(d.descriptors),
            "start_question": d.start_question,
            "end_question": d.end_question,
        }
        try:
            out.append(_row(validate_record(record, label, descriptors), "given", 0, []))
        except DescriptionFormatError as exc:
            raise InputError(f"{path}: description of {label!r}: {exc}") from None
    return out


def descriptions_table(rows: Sequence[dict[str, Any]]) -> Any:
    # pyarrow is imported only here: the CLI imports this module's config for its defaults.
    from zsar_cli.artifacts import build_table

    return build_table(
        "descriptions",
        {name: [r[name] for r in rows] for name in (*RECORD_COLUMNS, *GUARD_COLUMNS)},
    )


@dataclass
class DescribeSummary:
    labels: int
    generated: bool
    cache_key: str
    result: DescribeResult | None = None


@scoped
def run(
    labels_file: str | Path | None,
    output: str | Path,
    config: DescribeConfig,
    generator: RecordGenerator | None = None,
    force: bool = False,
    on_batch: Callable[[int, int], None] | None = None,
) -> DescribeSummary:
    """Labels → `descriptions` artifact, from the model (cached) or from `config.from_file`."""
    from zsar_cli.labels import read_labels

    cfg = config.validated()
    labels = read_labels(labels_file) if labels_file is not None else None
    check_output_path(output)
    provenance = cfg.provenance()
    result = None
    if cfg.from_file is not None:
        note_input(cfg.from_file)
        rows = records_from_file(cfg.from_file, labels, cfg.descriptors)
        source = Path(cfg.from_file).read_bytes()
    else:
        if labels is None:
            raise ConfigError("give --labels (or --from FILE with hand-written descriptions)")
        if generator is None:
            from zsar_cli.backends import load_text_generator

            generator = load_text_generator(
                cfg.model,
                device=cfg.device,
                dtype=cfg.dtype,
                trust_remote_code=cfg.trust_remote_code,
            )
        cache = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()
        result = describe_labels(labels, generator, cfg, cache, on_batch)
        rows = result.rows
        provenance["model_revision"] = str(getattr(generator, "revision", ""))
        source = "\n".join(labels).encode()
    upstream = ["labels:" + hashlib.sha256(source).hexdigest()[:32]]
    from zsar_cli.artifacts import write_artifact

    key = write_artifact(
        descriptions_table(rows), output, "descriptions", provenance, upstream, force=force
    )
    return DescribeSummary(len(rows), cfg.from_file is None, key, result)
