"""Served LVLMs: an OpenAI-compatible chat-completions endpoint (`openai:URL#MODEL`).

Input: RGB frames (H×W×3 uint8) and prompt texts. Output: as every `lvlm_base.LVLM`: yes/no
confidences, option-letter probabilities and greedy text, from a model served by vLLM, SGLang,
the llama.cpp server or any other server of the OpenAI chat-completions protocol, so a 7-72B
video LVLM is loaded once on its GPUs instead of in every job.

Spec `openai:URL#MODEL`, the API key, retries, concurrency and the request cache: see
`zsar_cli.backends.openai_client`.

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

Standard library HTTP (urllib); numpy and Pillow only: no torch is imported for a served model.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from zsar_cli.backends.lvlm_base import YesNoScores, cap_frames
from zsar_cli.backends.openai_client import ServedClient, text_of
from zsar_cli.backends.openai_client import parse_spec as parse_spec
from zsar_cli.errors import ConfigError, ModelError
from zsar_cli.prompts import NO_SPELLINGS, YES_SPELLINGS, format_choice_prompt, option_letters

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


class OpenAILVLM(ServedClient):
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
        super().__init__(spec, url, model, concurrency, timeout, retries, responses)
        self.top_logprobs = int(top_logprobs)
        self.max_pixels = max_pixels
        self.max_frames = max_frames

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
