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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zsar_cli import options as o
from zsar_cli.backends.openai_text import RESPONSE_FORMATS
from zsar_cli.backends.text_base import RecordSchema
from zsar_cli.errors import ConfigError, InputError, ModelError
from zsar_cli.options import ConfigBase, opt
from zsar_cli.outputs import check_output_path, note_input, scoped
from zsar_cli.stages.describe_records import DESCRIPTION_CHARS as DESCRIPTION_CHARS
from zsar_cli.stages.describe_records import DESCRIPTOR_CHARS as DESCRIPTOR_CHARS
from zsar_cli.stages.describe_records import DESCRIPTOR_WORDS as DESCRIPTOR_WORDS
from zsar_cli.stages.describe_records import END_TEMPLATE as END_TEMPLATE
from zsar_cli.stages.describe_records import GUARD_COLUMNS as GUARD_COLUMNS
from zsar_cli.stages.describe_records import HAND_MIN_DESCRIPTORS as HAND_MIN_DESCRIPTORS
from zsar_cli.stages.describe_records import MAX_DESCRIPTORS as MAX_DESCRIPTORS
from zsar_cli.stages.describe_records import MIN_DESCRIPTORS as MIN_DESCRIPTORS
from zsar_cli.stages.describe_records import PROMPT as PROMPT
from zsar_cli.stages.describe_records import PROMPT_VERSION as PROMPT_VERSION
from zsar_cli.stages.describe_records import QUESTION_CHARS as QUESTION_CHARS
from zsar_cli.stages.describe_records import RECORD_COLUMNS as RECORD_COLUMNS
from zsar_cli.stages.describe_records import START_TEMPLATE as START_TEMPLATE
from zsar_cli.stages.describe_records import STOPWORDS as STOPWORDS
from zsar_cli.stages.describe_records import STRONGER as STRONGER
from zsar_cli.stages.describe_records import Attempt as Attempt
from zsar_cli.stages.describe_records import DescriptionFormatError as DescriptionFormatError
from zsar_cli.stages.describe_records import _row
from zsar_cli.stages.describe_records import action_text as action_text
from zsar_cli.stages.describe_records import check_answer as check_answer
from zsar_cli.stages.describe_records import guard as guard
from zsar_cli.stages.describe_records import mentions_subject as mentions_subject
from zsar_cli.stages.describe_records import prompt_for as prompt_for
from zsar_cli.stages.describe_records import record_schema as record_schema
from zsar_cli.stages.describe_records import same_word as same_word
from zsar_cli.stages.describe_records import settle as settle
from zsar_cli.stages.describe_records import stem as stem
from zsar_cli.stages.describe_records import subject_words as subject_words
from zsar_cli.stages.describe_records import validate_record as validate_record

if TYPE_CHECKING:
    from zsar_cli.backends.text_base import RecordGenerator

DEFAULT_MODEL = "hf:HuggingFaceTB/SmolLM2-360M-Instruct"


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
    response_format: str = opt(
        "json_schema",
        "Served models (openai:URL#MODEL): json_schema (the record's JSON Schema as the "
        "provider's structured output: valid on the first try), json_object (JSON mode: fields "
        "checked, regenerated once, repaired) or none (plain text).",
        choices=RESPONSE_FORMATS,
    )
    device: str = o.device()
    dtype: str = o.lvlm_dtype()
    trust_remote_code: bool = o.trust_remote_code()
    request_concurrency: int = o.request_concurrency()
    request_timeout: float = o.request_timeout()
    request_retries: int = o.request_retries()
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
        if self.from_file is not None or not o.served_spec(self.model):
            # Only a served model's answers depend on it; local runs keep their cache keys.
            out.pop("response_format", None)
        return out


def default_cache_dir() -> Path:
    root = os.environ.get("ZSAR_CACHE_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "zsar"
    return base / "descriptions"


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
            # Served models only, so local runs keep their cache keys.
            *([config.response_format] if o.served_spec(config.model) else []),
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

            served: dict[str, Any] = {}
            if o.served_spec(cfg.model):
                served = {
                    "response_format": cfg.response_format,
                    "concurrency": cfg.request_concurrency,
                    "timeout": cfg.request_timeout,
                    "retries": cfg.request_retries,
                }
            generator = load_text_generator(
                cfg.model,
                device=cfg.device,
                dtype=cfg.dtype,
                trust_remote_code=cfg.trust_remote_code,
                **served,
            )
        cache = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()
        result = describe_labels(labels, generator, cfg, cache, on_batch)
        rows = result.rows
        provenance["model_revision"] = str(getattr(generator, "revision", ""))
        fingerprints = sorted(getattr(generator, "fingerprints", ()))
        if fingerprints:  # what a provider says of the weights that answered
            provenance["system_fingerprints"] = fingerprints
        source = "\n".join(labels).encode()
    upstream = ["labels:" + hashlib.sha256(source).hexdigest()[:32]]
    from zsar_cli.artifacts import write_artifact

    key = write_artifact(
        descriptions_table(rows), output, "descriptions", provenance, upstream, force=force
    )
    return DescribeSummary(len(rows), cfg.from_file is None, key, result)
