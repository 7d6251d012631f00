"""Stage `describe`: per label, a description, ~8 visual attributes and start/end yes/no questions.

Input: a labels file, and either a text model (an `hf:` causal LM, or an image-text-to-text
model's language model) or hand-written descriptions (`--from` JSON/Parquet in the same schema).
Output: a `descriptions` artifact (label, description, descriptors, start_question,
end_question) — ZEAL's stage 1 plus description attributes.

The model answers with a JSON object, greedy-decoded; the answer is parsed and validated, and a
bad answer is retried once with a stricter prompt before a clear error. Accepted answers are
cached per (label, model, prompt settings) as small JSON files, so reruns and other label sets
sharing labels do not regenerate them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zsar_cli import options as o
from zsar_cli.errors import ConfigError, InputError, ModelError
from zsar_cli.options import ConfigBase, opt
from zsar_cli.outputs import check_output_path, note_input, scoped

if TYPE_CHECKING:
    from zsar_cli.backends.lvlm_base import TextGenerator

DEFAULT_MODEL = "hf:HuggingFaceTB/SmolLM2-360M-Instruct"
PROMPT_VERSION = 1
MIN_DESCRIPTORS = 3

PROMPT = (
    'For a video recognition system, describe the action or event "{label}".\n'
    "Reply with only a JSON object with exactly these keys:\n"
    '"description": one sentence on what a viewer sees,\n'
    '"descriptors": a list of {count} short visual attributes (2 to 4 words each),\n'
    '"start_question": a yes/no question answerable from one frame, about what is unique to the '
    "very beginning of the action,\n"
    '"end_question": a yes/no question answerable from one frame, about what is unique to the '
    "very end of the action."
)
STRICT_SUFFIX = (
    "\nYour previous answer could not be used ({reason}). Output ONLY the JSON object: start with "
    '{{ and end with }}, use double quotes, and give all four keys. Example: {{"description": '
    '"...", "descriptors": ["...", "..."], "start_question": "Is ...?", "end_question": "Is ...?"}}'
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
    descriptors: int = opt(8, "Visual attribute keywords per label.", min=1)
    max_new_tokens: int = opt(320, "Generation length per label.", min=16)
    device: str = o.device()
    dtype: str = o.lvlm_dtype()
    trust_remote_code: bool = o.trust_remote_code()
    cache_dir: str | None = opt(
        None,
        "Cache of generated descriptions per (label, model) "
        "[default: $ZSAR_CACHE_DIR/descriptions or ~/.cache/zsar/descriptions].",
        run_only=True,
    )

    def provenance(self) -> dict[str, object]:
        out = super().provenance()
        if self.from_file is not None:  # read, not generated: the model settings played no part
            for name in ("model", "max_new_tokens", "dtype", "trust_remote_code"):
                out.pop(name, None)
        return out


def default_cache_dir() -> Path:
    root = os.environ.get("ZSAR_CACHE_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "zsar"
    return base / "descriptions"


# ---------------------------------------------------------------------------------------------
# Parsing and validation


class DescriptionFormatError(ValueError):
    """An answer that is not a usable description object (the reason is the message)."""


def _json_object(text: str) -> Any:
    start = text.find("{")
    end = text.rfind("}")
    if start < 0 or end <= start:
        raise DescriptionFormatError("no JSON object in the answer")
    try:
        return json.loads(text[start : end + 1])
    except json.JSONDecodeError as exc:
        raise DescriptionFormatError(f"invalid JSON: {exc.msg} at char {exc.pos}") from None


def validate_record(record: Any, label: str, descriptors: int) -> dict[str, Any]:
    """A clean description record, or DescriptionFormatError naming what is wrong."""
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
    if len(clean) < min(MIN_DESCRIPTORS, descriptors):
        need = min(MIN_DESCRIPTORS, descriptors)
        raise DescriptionFormatError(
            f"'descriptors' has {len(clean)} item(s); need at least {need}"
        )
    out["descriptors"] = clean[:descriptors]
    for key in ("start_question", "end_question"):
        if not out[key].endswith("?"):
            out[key] += "?"
    return out


def parse_answer(text: str, label: str, descriptors: int) -> dict[str, Any]:
    return validate_record(_json_object(text), label, descriptors)


def prompt_for(label: str, descriptors: int, reason: str | None = None) -> str:
    text = PROMPT.format(label=label, count=descriptors)
    return text if reason is None else text + STRICT_SUFFIX.format(reason=reason)


# ---------------------------------------------------------------------------------------------
# Generation with retry and cache


def cache_path(cache_dir: Path, label: str, config: DescribeConfig) -> Path:
    key = json.dumps(
        [
            PROMPT_VERSION,
            config.model,
            config.descriptors,
            config.max_new_tokens,
            config.dtype,
            label,
        ]
    )
    return cache_dir / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"


def describe_labels(
    labels: Sequence[str],
    generate: Callable[[list[str]], list[str]],
    config: DescribeConfig,
    cache_dir: Path | None = None,
) -> list[dict[str, Any]]:
    """Records for `labels`: cached ones reused, the rest generated (one retry per bad answer).

    `generate` maps prompts to the model's answers (greedy). A label whose answer is still not a
    valid description after the stricter retry raises ModelError naming the label and the reason.
    """
    records: dict[str, dict[str, Any]] = {}
    todo = []
    for label in labels:
        path = cache_path(cache_dir, label, config) if cache_dir is not None else None
        if path is not None and path.is_file():
            try:
                records[label] = validate_record(
                    json.loads(path.read_text(encoding="utf-8")), label, config.descriptors
                )
                continue
            except (OSError, json.JSONDecodeError, DescriptionFormatError):
                pass  # a corrupt cache entry is regenerated
        todo.append(label)
    reasons: dict[str, str] = {}
    if todo:
        answers = generate([prompt_for(label, config.descriptors) for label in todo])
        for label, answer in zip(todo, answers, strict=True):
            try:
                records[label] = parse_answer(answer, label, config.descriptors)
            except DescriptionFormatError as exc:
                reasons[label] = str(exc)
    if reasons:
        retry = list(reasons)
        answers = generate(
            [prompt_for(label, config.descriptors, reasons[label]) for label in retry]
        )
        for label, answer in zip(retry, answers, strict=True):
            try:
                records[label] = parse_answer(answer, label, config.descriptors)
            except DescriptionFormatError as exc:
                snippet = " ".join(answer.split())[:60]
                raise ModelError(
                    f"{config.model}: answer for label {label!r} is not a valid description "
                    f"after a stricter retry ({exc}; answer began {snippet!r}); use a larger "
                    "model or write the descriptions yourself and pass --from FILE"
                ) from None
    if cache_dir is not None:
        from zsar_cli.jsonio import write_json

        cache_dir.mkdir(parents=True, exist_ok=True)
        for label in todo:
            write_json(records[label], cache_path(cache_dir, label, config), force=True)
    return [records[label] for label in labels]


def records_from_file(
    path: str | Path, labels: Sequence[str] | None, descriptors: int
) -> list[dict]:
    """Hand-written descriptions (JSON or a descriptions Parquet), validated like model output."""
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
            out.append(validate_record(record, label, descriptors))
        except DescriptionFormatError as exc:
            raise InputError(f"{path}: description of {label!r}: {exc}") from None
    return out


def descriptions_table(records: Sequence[dict[str, Any]]) -> Any:
    # pyarrow is imported only here: the CLI imports this module's config for its defaults.
    from zsar_cli.artifacts import build_table

    return build_table(
        "descriptions",
        {
            name: [r[name] for r in records]
            for name in ("label", "description", "descriptors", "start_question", "end_question")
        },
    )


@dataclass
class DescribeSummary:
    labels: int
    generated: bool
    cache_key: str


@scoped
def run(
    labels_file: str | Path | None,
    output: str | Path,
    config: DescribeConfig,
    generator: TextGenerator | None = None,
    force: bool = False,
) -> DescribeSummary:
    """Labels → `descriptions` artifact, from the model (cached) or from `config.from_file`."""
    from zsar_cli.labels import read_labels

    cfg = config.validated()
    labels = read_labels(labels_file) if labels_file is not None else None
    check_output_path(output)
    if cfg.from_file is not None:
        note_input(cfg.from_file)
        records = records_from_file(cfg.from_file, labels, cfg.descriptors)
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
        records = describe_labels(
            labels, lambda prompts: generator.generate_text(prompts, cfg.max_new_tokens), cfg, cache
        )
        source = "\n".join(labels).encode()
    upstream = ["labels:" + hashlib.sha256(source).hexdigest()[:32]]
    from zsar_cli.artifacts import write_artifact

    key = write_artifact(
        descriptions_table(records), output, "descriptions", cfg.provenance(), upstream, force=force
    )
    return DescribeSummary(len(records), cfg.from_file is None, key)
