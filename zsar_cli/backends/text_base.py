"""What `describe` asks of a text model: one JSON record per prompt, in a fixed layout.

Input: prompts and a `RecordSchema` (ordered string and list-of-string fields with length caps).
Output: one JSON text per prompt that `RecordSchema.parse` accepts.

`RecordGenerator` is the Protocol a text backend implements. The `hf:` backend constrains its
decoding to the schema token by token (`zsar_cli.backends.json_constraint`), so its answers
always parse; a served backend (an OpenAI-compatible endpoint) can pass `json_schema()` as the
provider's JSON-schema response format instead. The stage still parses and checks every answer,
so a backend that cannot constrain its output is handled too (one regeneration, then an error).

No numpy, torch or pyarrow here: the CLI imports the describe stage's config, which imports this.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class StringField:
    """A non-empty string of at most `max_chars` characters; a question must end with "?"."""

    name: str
    max_chars: int
    question: bool = False


@dataclass(frozen=True)
class ListField:
    """`min_items`..`max_items` non-empty strings of at most `max_chars` characters each."""

    name: str
    max_chars: int
    min_items: int
    max_items: int


Field = StringField | ListField


class RecordError(ValueError):
    """An answer that is not a record of the schema (the message says why)."""


@dataclass(frozen=True)
class RecordSchema:
    """An object with exactly these fields, in this order (the order the model writes them)."""

    fields: tuple[Field, ...]

    def __post_init__(self) -> None:
        if not self.fields:
            raise ValueError("a record schema needs at least one field")
        for f in self.fields:
            if f.max_chars < (2 if isinstance(f, StringField) and f.question else 1):
                raise ValueError(f"field {f.name!r}: max_chars {f.max_chars} is too small")
            if isinstance(f, ListField) and not 1 <= f.min_items <= f.max_items:
                raise ValueError(f"field {f.name!r}: need 1 <= min_items <= max_items")

    def key(self) -> str:
        """A stable text for cache keys."""
        return json.dumps([{"kind": type(f).__name__, **asdict(f)} for f in self.fields])

    def json_schema(self) -> dict[str, Any]:
        """The same contract as JSON Schema (for providers' structured-output options)."""
        properties: dict[str, Any] = {}
        for f in self.fields:
            if isinstance(f, StringField):
                prop: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": f.max_chars}
                if f.question:
                    prop["pattern"] = r"\?$"
            else:
                prop = {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1, "maxLength": f.max_chars},
                    "minItems": f.min_items,
                    "maxItems": f.max_items,
                }
            properties[f.name] = prop
        return {
            "type": "object",
            "properties": properties,
            "required": [f.name for f in self.fields],
            "additionalProperties": False,
        }

    def check(self, value: Any) -> dict[str, Any]:
        """`value` as a record of this schema (whitespace runs collapsed), or RecordError."""
        if not isinstance(value, dict):
            raise RecordError("the JSON value is not an object")
        out: dict[str, Any] = {}
        for f in self.fields:
            if f.name not in value:
                raise RecordError(f"missing {f.name!r}")
            item = value[f.name]
            if isinstance(f, StringField):
                out[f.name] = _check_string(item, f.name, f.max_chars)
                if f.question and not out[f.name].endswith("?"):
                    raise RecordError(f"{f.name!r} does not end with '?'")
                continue
            if not isinstance(item, list):
                raise RecordError(f"{f.name!r} is not a list")
            if not f.min_items <= len(item) <= f.max_items:
                raise RecordError(
                    f"{f.name!r} has {len(item)} item(s); need {f.min_items} to {f.max_items}"
                )
            out[f.name] = [
                _check_string(x, f"{f.name}[{i}]", f.max_chars) for i, x in enumerate(item)
            ]
        return out

    def parse(self, text: str) -> dict[str, Any]:
        """An answer's text as a record: strict JSON (nothing around it but whitespace)."""
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecordError(f"invalid JSON: {exc.msg} at char {exc.pos}") from None
        return self.check(value)


def _check_string(value: Any, where: str, max_chars: int) -> str:
    if not isinstance(value, str):
        raise RecordError(f"{where!r} is not a string")
    clean = " ".join(value.split())
    if not clean:
        raise RecordError(f"{where!r} is empty")
    if len(value) > max_chars:
        raise RecordError(f"{where!r} is longer than {max_chars} characters")
    return clean


@runtime_checkable
class RecordGenerator(Protocol):
    """Greedy generation of one schema record per text-only chat prompt (`zsar describe`)."""

    spec: str
    revision: str
    """What identifies the weights beyond the spec (a Hub commit, a local folder's fingerprint);
    part of describe's cache key, so changed weights never reuse old answers."""

    def generate_records(
        self, prompts: Sequence[str], schema: RecordSchema, max_new_tokens: int
    ) -> list[str]:
        """One JSON text per prompt, at most `max_new_tokens` tokens each. Backends that can
        constrain decoding guarantee `schema.parse` accepts it; others should try their best."""
        ...
