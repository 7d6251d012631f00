"""Served LVLMs: an OpenAI-compatible chat-completions endpoint (`openai:URL#MODEL`).

Input: RGB frames (H×W×3 uint8) and prompt texts. Output: as every `lvlm_base.LVLM`: yes/no
confidences, option-letter probabilities and greedy text, from a model served by vLLM, SGLang,
the llama.cpp server or any other server of the OpenAI chat-completions protocol, so a 7-72B
video LVLM is loaded once on its GPUs instead of in every job.

Spec: `openai:http://HOST:8000/v1#Qwen/Qwen2.5-VL-7B-Instruct`: the base URL (ending in `/v1`,
or the full `.../chat/completions`) and, after `#`, the model name the server knows. The API
key, if the server wants one, comes from the environment only (ZSAR_OPENAI_API_KEY, else
OPENAI_API_KEY) and is sent as a bearer token; it is never part of the spec, so never written
to an artifact's provenance, a log or an error message. A URL with credentials in it is refused.

How the scores are read (one request per prompt, frames first as PNG data URLs, then the text;
`max_tokens=1`, `temperature=0`, `logprobs=true`, `top_logprobs=k`):
- p_yes: yes_mass / (yes_mass + no_mass), the masses summed over the returned top-k next-token
  log-probs whose token is a spelling of yes / of no (`zsar_cli.prompts`), as the local backend
  sums them over the full softmax. The server returns only its top k (`--top-logprobs`, at most
  20 on vLLM and OpenAI): **mass outside the top-k is unknown and counted as 0**. Where every
  single-token spelling is inside the top-k, p_yes and both masses equal the local backend's;
  where some are not, yes_mass and no_mass are lower bounds, a family missing altogether makes
  p_yes 0 or 1, and with neither in the top-k p_yes is 0.5 with both masses 0 (the local
  formula on the truncated distribution). k is recorded in the artifact's metadata and cache key.
- choice: each option's mass from its letter's spellings ("A", " A") in the top-k, renormalised
  over the options (all zeros when no letter is in the top-k).
- generate: the returned text of a greedy completion of `max_new_tokens` tokens.

Requests run `concurrency` at a time (a thread pool; per process, so a Slurm array or Ray
actors multiply it). One that fails with 408/429/5xx, a timeout (no response within `timeout`
seconds) or a broken connection is retried up to `retries` times with exponential backoff
(0.5 s doubling, at most 30 s; a Retry-After header is honoured); any other HTTP error stops the
run with the server's message. With `responses` (a folder: query-lvlm puts it inside the run's
checkpoint folder, named by the artifact's cache key) every answered request is cached there,
keyed by a hash of the request, so a rerun after a crash or a kill resends nothing already
answered; the folder goes with the checkpoints once the output is complete.

Standard library HTTP (urllib); numpy and Pillow only: no torch is imported for a served model.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import math
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

import numpy as np

from zsar_cli.backends.lvlm_base import YesNoScores, cap_frames
from zsar_cli.errors import ConfigError, ModelError
from zsar_cli.prompts import NO_SPELLINGS, YES_SPELLINGS, format_choice_prompt, option_letters

API_KEY_ENV: tuple[str, ...] = ("ZSAR_OPENAI_API_KEY", "OPENAI_API_KEY")
RETRY_STATUS = frozenset({408, 425, 429})  # and every 5xx
BACKOFF_BASE_S = 0.5
BACKOFF_MAX_S = 30.0
# Byte-level BPE and SentencePiece mark a leading space in the raw token; servers usually
# return decoded text, but not all do.
SPACE_MARKS = ("Ġ", "▁")


def served_options(config: Any, responses: str | None = None) -> dict[str, Any]:
    """The served-model options of a stage config (QueryConfig's request_* and top_logprobs)."""
    return {
        "top_logprobs": config.top_logprobs,
        "concurrency": config.request_concurrency,
        "timeout": config.request_timeout,
        "retries": config.request_retries,
        "responses": responses,
    }


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


def cap_pixels(image: np.ndarray, max_pixels: int | None) -> np.ndarray:
    """Downscale (keeping aspect) to at most `max_pixels`, as `hf_lvlm.cap_pixels` does, so a
    served model is sent the pixels a local one would see (and a large frame stays small)."""
    height, width = image.shape[:2]
    if not max_pixels or height * width <= max_pixels:
        return image
    from PIL import Image

    scale = (max_pixels / (height * width)) ** 0.5
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))


def image_url(image: np.ndarray) -> str:
    """A PNG data URL: lossless, so the server decodes exactly the frame zsar decoded."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def normalise_token(token: str) -> str:
    for mark in SPACE_MARKS:
        if token.startswith(mark):
            return " " + token[len(mark) :]
    return token


def spelling_mass(top: Sequence[tuple[str, float]], spellings: Sequence[str]) -> float:
    """Probability mass of the returned tokens that are one of `spellings`."""
    wanted = set(spellings)
    return float(sum(math.exp(lp) for token, lp in top if normalise_token(token) in wanted))


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


class OpenAILVLM:
    """A model behind an OpenAI-compatible chat-completions endpoint (implements `LVLM`)."""

    def __init__(
        self,
        spec: str,
        url: str,
        model: str,
        top_logprobs: int = 20,
        concurrency: int = 8,
        timeout: float = 120.0,
        retries: int = 5,
        responses: str | None = None,
        max_pixels: int | None = None,
        max_frames: int | None = None,
    ) -> None:
        self.spec = spec
        self.url = url
        self.model = model
        self.top_logprobs = int(top_logprobs)
        self.concurrency = max(1, int(concurrency))
        self.timeout = float(timeout)
        self.retries = max(0, int(retries))
        self.max_pixels = max_pixels
        self.max_frames = max_frames
        self.cache = ResponseCache(responses) if responses else None
        self.sent = 0  # requests sent (retries included), for the run's own accounting
        self._count = threading.Lock()
        self._sleep: Callable[[float], None] = time.sleep

    # -- requests ----------------------------------------------------------------------------
    def _messages(self, images: Sequence[np.ndarray], text: str) -> list[dict[str, Any]]:
        capped = [cap_pixels(im, self.max_pixels) for im in cap_frames(images, self.max_frames)]
        content: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": image_url(im)}} for im in capped
        ]
        content.append({"type": "text", "text": text})
        return [{"role": "user", "content": content}]

    def _body(self, images: Sequence[np.ndarray], text: str, max_tokens: int, logprobs: bool):  # type: ignore[no-untyped-def]
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self._messages(images, text),
            "max_tokens": max_tokens,
            "temperature": 0,
        }
        if logprobs:
            body.update(logprobs=True, top_logprobs=self.top_logprobs)
        return body

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

    def _top(self, response: dict[str, Any]) -> list[list[Any]]:
        """The first generated token's top-k as [token, logprob] pairs (JSON-cacheable)."""
        return [[t, lp] for t, lp in top_logprobs_of(response, self.spec)]

    # -- LVLM --------------------------------------------------------------------------------
    def yes_no(
        self, images_per_prompt: Sequence[Sequence[np.ndarray]], prompts: Sequence[str]
    ) -> YesNoScores:
        if len(images_per_prompt) != len(prompts):
            raise ValueError("one image list per prompt is required")
        bodies = [
            self._body(ims, p, 1, True) for ims, p in zip(images_per_prompt, prompts, strict=True)
        ]
        tops = self._many(bodies, self._top)
        yes = np.array([spelling_mass(top, YES_SPELLINGS) for top in tops], np.float64)
        no = np.array([spelling_mass(top, NO_SPELLINGS) for top in tops], np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            p_yes = np.where(yes + no > 0, yes / (yes + no), 0.5)
        return YesNoScores(p_yes=p_yes, yes_mass=yes, no_mass=no)

    def choice_batch(
        self,
        images_per_prompt: Sequence[Sequence[np.ndarray]],
        questions: Sequence[str],
        options: Sequence[str],
    ) -> np.ndarray:
        letters = option_letters(len(options))
        bodies = [
            self._body(ims, format_choice_prompt(q, options), 1, True)
            for ims, q in zip(images_per_prompt, questions, strict=True)
        ]
        rows = []
        for top in self._many(bodies, self._top):
            mass = np.array([spelling_mass(top, (x, " " + x)) for x in letters], np.float64)
            rows.append(mass / max(float(mass.sum()), 1e-300))
        return np.array(rows) if rows else np.zeros((0, len(options)))

    def choice(
        self, images: Sequence[np.ndarray], question: str, options: Sequence[str]
    ) -> np.ndarray:
        return self.choice_batch([images], [question], options)[0]

    def generate(
        self,
        images_per_prompt: Sequence[Sequence[np.ndarray]],
        prompts: Sequence[str],
        max_new_tokens: int = 64,
    ) -> list[str]:
        bodies = [
            self._body(ims, p, max_new_tokens, False)
            for ims, p in zip(images_per_prompt, prompts, strict=True)
        ]
        return [str(t).strip() for t in self._many(bodies, lambda r: text_of(r, self.spec))]


def top_logprobs_of(response: dict[str, Any], spec: str) -> list[tuple[str, float]]:
    """(token, logprob) of the first generated token's top-k, plus that token itself when the
    server lists it apart; chat format (`logprobs.content[0].top_logprobs`) or the legacy
    completions format (`logprobs.top_logprobs[0]`, a token → logprob map)."""
    try:
        choice = response["choices"][0]
        logprobs = choice.get("logprobs") or {}
        if "content" in logprobs:
            first = (logprobs.get("content") or [None])[0]
            top = [(str(e["token"]), float(e["logprob"])) for e in first.get("top_logprobs") or []]
            if "token" in first and all(t != first["token"] for t, _ in top):
                top.append((str(first["token"]), float(first["logprob"])))
        else:
            legacy = (logprobs.get("top_logprobs") or [None])[0]
            top = [(str(t), float(lp)) for t, lp in legacy.items()]
    except (KeyError, IndexError, TypeError, AttributeError, ValueError):
        top = []
    if not top:
        raise ModelError(
            f"{spec}: the server returned no next-token log-probs; p_yes and choice are read "
            "from them, so serve the model with log-prob support (vLLM: --max-logprobs >= "
            "--top-logprobs)"
        )
    return top


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


def load_openai_lvlm(
    rest: str,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
    max_pixels: int | None = None,
    max_frames: int | None = None,
    batch_size: int = 8,
    top_logprobs: int = 20,
    concurrency: int = 8,
    timeout: float = 120.0,
    retries: int = 5,
    responses: str | None = None,
) -> OpenAILVLM:
    """`openai:URL#MODEL`. device, dtype, trust_remote_code and batch_size concern local weights
    and are the server's business here; nothing is contacted until the first prompt."""
    url, model = parse_spec(rest)
    if top_logprobs < 1:
        raise ConfigError(f"--top-logprobs must be >= 1 (got {top_logprobs})")
    return OpenAILVLM(
        f"openai:{rest}",
        url,
        model,
        top_logprobs=top_logprobs,
        concurrency=concurrency,
        timeout=timeout,
        retries=retries,
        responses=responses,
        max_pixels=max_pixels,
        max_frames=max_frames,
    )
