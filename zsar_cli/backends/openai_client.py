"""The HTTP side of served models: an OpenAI-compatible chat-completions endpoint
(`openai:URL#MODEL`), shared by the served LVLM (`openai_lvlm`) and the served text model of
`describe` (`openai_text`).

Input: request bodies (JSON). Output: the server's answers, with retries, a request cache and
one-line errors. The spec is `openai:http://HOST:8000/v1#MODEL`: the base URL (ending in `/v1`,
or the full `.../chat/completions`) and, after `#`, the model name the server knows. The API
key, if the server wants one, comes from the environment only (ZSAR_OPENAI_API_KEY, else
OPENAI_API_KEY) and is sent as a bearer token; it is never part of the spec, so never written
to an artifact's provenance, a log or an error message. A URL with credentials in it is refused.

Requests run `concurrency` at a time (a thread pool; per process, so a Slurm array or Ray
actors multiply it). One that fails with 408/429/5xx, a timeout (no response within `timeout`
seconds) or a broken connection is retried up to `retries` times with exponential backoff
(0.5 s doubling, at most 30 s; a Retry-After header is honoured); any other HTTP error stops the
run with the server's message. With `responses` (a folder) every answered request is cached
there, keyed by a hash of the request, so a rerun after a crash resends nothing already answered.

Standard library HTTP (urllib) only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from zsar_cli.errors import ModelError

API_KEY_ENV: tuple[str, ...] = ("ZSAR_OPENAI_API_KEY", "OPENAI_API_KEY")
RETRY_STATUS = frozenset({408, 425, 429})  # and every 5xx
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0


def parse_spec(rest: str) -> tuple[str, str]:
    """`URL#MODEL` → (chat-completions URL, model name); one clear error otherwise."""
    url, sep, model = rest.rpartition("#")
    if not sep or not url or not model.strip():
        raise ModelError(
            f"openai:{rest}: expected openai:URL#MODEL, e.g. "
            "openai:http://localhost:8000/v1#Qwen/Qwen2.5-VL-7B-Instruct"
        )
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ModelError(f"openai:{rest}: {url!r} is not an http(s) URL")
    query_names = [k.lower() for k, _ in urllib.parse.parse_qsl(parts.query)]
    if parts.username or parts.password or any("key" in k or "token" in k for k in query_names):
        raise ModelError(
            "openai: the URL holds credentials, and the model spec is recorded in every "
            f"artifact; put the key in {API_KEY_ENV[0]} instead"
        )
    path = parts.path.rstrip("/")
    if not path.endswith("/chat/completions"):
        path += "/chat/completions"
    return urllib.parse.urlunsplit(parts._replace(path=path)), model.strip()


def api_key() -> str | None:
    for name in API_KEY_ENV:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


class ResponseCache:
    """Answered requests by request hash: JSON lines in a folder, one file per process (so
    shards and Ray actors never write the same file); a torn last line is ignored."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.entries: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.own = self.folder / f"{socket.gethostname()}-{os.getpid()}.jsonl"
        if self.folder.is_dir():
            for path in sorted(self.folder.glob("*.jsonl")):
                for line in path.read_text(encoding="utf-8").splitlines():
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        entry = json.loads(line)
                        self.entries[entry["key"]] = entry["response"]

    def get(self, key: str) -> Any | None:
        with self.lock:
            return self.entries.get(key)

    def put(self, key: str, response: Any) -> None:
        line = json.dumps({"key": key, "response": response}, separators=(",", ":"))
        with self.lock:
            self.entries[key] = response
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self.own, "a", encoding="utf-8") as f:
                f.write(line + "\n")


class ServedClient:
    """Requests to one served model: retried, cached, `concurrency` at a time."""

    def __init__(
        self,
        spec: str,
        url: str,
        model: str,
        concurrency: int = 8,
        timeout: float = 120.0,
        retries: int = 5,
        responses: str | None = None,
    ) -> None:
        self.spec = spec
        self.url = url
        self.model = model
        self.concurrency = max(1, int(concurrency))
        self.timeout = float(timeout)
        self.retries = max(0, int(retries))
        self.cache = ResponseCache(responses) if responses else None
        self.sent = 0  # requests sent (retries included), for the run's own accounting
        self._count = threading.Lock()
        self._sleep: Callable[[float], None] = time.sleep

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        """One request, retried on 408/429/5xx, timeouts and broken connections."""
        data = json.dumps(body).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        key = api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        problem = ""
        for attempt in range(self.retries + 1):
            wait: float | None = None
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            with self._count:
                self.sent += 1
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    payload = response.read()
                try:
                    return dict(json.loads(payload))
                except (ValueError, TypeError):
                    raise ModelError(
                        f"{self.spec}: the server's answer is not JSON ({payload[:80]!r})"
                    ) from None
            except urllib.error.HTTPError as exc:
                message = _error_message(exc)
                if exc.code not in RETRY_STATUS and exc.code < 500:
                    hint = ""
                    if exc.code in (401, 403):
                        hint = f" (the API key comes from {' or '.join(API_KEY_ENV)})"
                    raise ModelError(
                        f"{self.spec}: HTTP {exc.code} {exc.reason}: {message}{hint}"
                    ) from None
                problem = f"HTTP {exc.code} {exc.reason}: {message}"
                wait = _retry_after(exc)
            except TimeoutError:  # socket.timeout is TimeoutError
                problem = f"no response within {self.timeout:g} s (--request-timeout)"
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, TimeoutError):
                    problem = f"no response within {self.timeout:g} s (--request-timeout)"
                else:
                    problem = f"cannot reach {self.url} ({exc.reason})"
            except (ConnectionError, OSError) as exc:  # reset mid-response, remote closed
                problem = f"connection to {self.url} broken ({exc})"
            if attempt < self.retries:
                backoff = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt)
                backoff *= 1 + 0.1 * random.random()  # no lockstep retries of a full pool
                self._sleep(min(BACKOFF_MAX_S, wait) if wait is not None else backoff)
        tries = self.retries + 1
        raise ModelError(f"{self.spec}: {problem} ({tries} {'try' if tries == 1 else 'tries'})")

    def _ask(self, body: dict[str, Any], read: Callable[[dict[str, Any]], Any]) -> Any:
        """`read(response)` of one request, from the cache when it was answered before."""
        key = None
        if self.cache is not None:
            key = hashlib.sha256(json.dumps(body, sort_keys=True).encode("utf-8")).hexdigest()
            cached = self.cache.get(key)
            if cached is not None:
                return cached
        value = read(self._post(body))
        if self.cache is not None and key is not None:
            self.cache.put(key, value)
        return value

    def _many(self, bodies: Sequence[dict[str, Any]], read: Callable[[dict[str, Any]], Any]):  # type: ignore[no-untyped-def]
        if len(bodies) <= 1 or self.concurrency == 1:
            return [self._ask(b, read) for b in bodies]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(bodies))) as pool:
            return list(pool.map(lambda b: self._ask(b, read), bodies))


def text_of(response: dict[str, Any], spec: str) -> str:
    try:
        return str(response["choices"][0]["message"]["content"] or "")
    except (KeyError, IndexError, TypeError):
        raise ModelError(f"{spec}: the server's answer has no choices[0].message") from None


def _error_message(exc: urllib.error.HTTPError) -> str:
    """The server's own error text (OpenAI style {"error": {"message": ...}}), short."""
    try:
        body = exc.read().decode("utf-8", "replace")
    except OSError:
        return ""
    try:
        error = json.loads(body).get("error", body)
        text = error.get("message", str(error)) if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        text = body
    return " ".join(text.split())[:300]


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    value = exc.headers.get("Retry-After") if exc.headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP date: use the backoff
