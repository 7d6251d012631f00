"""Served text models for `describe`: an OpenAI-compatible chat-completions endpoint
(`openai:URL#MODEL`, see `zsar_cli.backends.openai_client` for the spec, key, retries and cache).

Input: text-only chat prompts and a `RecordSchema`. Output: one JSON text per prompt
(`RecordGenerator`), greedy (`temperature=0`), at most `max_new_tokens` tokens each.

How the record's layout reaches the server (`response_format`):
- `json_schema` (default): the schema as the provider's structured-output format
  (`{"type": "json_schema", "json_schema": {"name", "strict", "schema"}}`: OpenAI, vLLM, SGLang
  and llama.cpp decode under it), so the answer parses as a record on the first try;
- `json_object`: JSON mode only (some providers lack JSON-schema decoding): the answer is JSON,
  but its fields are checked by describe, which regenerates once and then repairs;
- `none`: plain completion, for servers with neither.
A server that refuses the format (HTTP 400 naming it) fails with one line saying which
`--response-format` to try; the choice is never changed silently, since it decides the answers
(it is part of describe's cache key).

Nothing names a served model's weights, so `revision` is `served:MODEL`; the answers' own
`system_fingerprint`s (where a provider sends them) are collected in `fingerprints` and
recorded in the artifact.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from zsar_cli.backends.openai_client import ServedClient, parse_spec, text_of
from zsar_cli.backends.text_base import RecordSchema
from zsar_cli.errors import ConfigError, ModelError

RESPONSE_FORMATS: tuple[str, ...] = ("json_schema", "json_object", "none")
SCHEMA_NAME = "zsar_description"


class OpenAITextGenerator(ServedClient):
    """A text model behind an OpenAI-compatible endpoint (implements `RecordGenerator`)."""

    def __init__(
        self,
        spec: str,
        url: str,
        model: str,
        response_format: str = "json_schema",
        concurrency: int = 8,
        timeout: float = 120.0,
        retries: int = 5,
        responses: str | None = None,
    ) -> None:
        if response_format not in RESPONSE_FORMATS:
            raise ConfigError(
                f"--response-format {response_format!r}: expected one of "
                f"{', '.join(RESPONSE_FORMATS)}"
            )
        super().__init__(spec, url, model, concurrency, timeout, retries, responses)
        self.response_format = response_format
        self.revision = f"served:{model}"
        self.fingerprints: set[str] = set()
        self._seen = threading.Lock()

    def _format(self, schema: RecordSchema) -> dict[str, Any] | None:
        if self.response_format == "json_schema":
            spec = {"name": SCHEMA_NAME, "strict": True, "schema": schema.json_schema()}
            return {"type": "json_schema", "json_schema": spec}
        if self.response_format == "json_object":
            return {"type": "json_object"}
        return None

    def body(self, prompt: str, schema: RecordSchema, max_new_tokens: int) -> dict[str, Any]:
        """The request of one prompt (also the response cache's key)."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_new_tokens,
            "temperature": 0,
        }
        response_format = self._format(schema)
        if response_format is not None:
            body["response_format"] = response_format
        return body

    def _read(self, response: dict[str, Any]) -> str:
        fingerprint = response.get("system_fingerprint")
        if fingerprint:
            with self._seen:
                self.fingerprints.add(str(fingerprint))
        return text_of(response, self.spec)

    def generate_records(
        self, prompts: Sequence[str], schema: RecordSchema, max_new_tokens: int
    ) -> list[str]:
        bodies = [self.body(p, schema, max_new_tokens) for p in prompts]
        try:
            return [str(t).strip() for t in self._many(bodies, self._read)]
        except ModelError as exc:
            text = str(exc)
            if self.response_format != "none" and "HTTP 400" in text and "format" in text.lower():
                other = "json_object" if self.response_format == "json_schema" else "none"
                raise ModelError(
                    f"{text} (the server refuses response_format {self.response_format}; try "
                    f"--response-format {other})"
                ) from None
            raise


def load_openai_text(
    rest: str,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
    response_format: str = "json_schema",
    concurrency: int = 8,
    timeout: float = 120.0,
    retries: int = 5,
    responses: str | None = None,
) -> OpenAITextGenerator:
    """`openai:URL#MODEL`. device, dtype and trust_remote_code concern local weights and are the
    server's business here; nothing is contacted until the first prompt."""
    url, model = parse_spec(rest)
    return OpenAITextGenerator(
        f"openai:{rest}",
        url,
        model,
        response_format=response_format,
        concurrency=concurrency,
        timeout=timeout,
        retries=retries,
        responses=responses,
    )
