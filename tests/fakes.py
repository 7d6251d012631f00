"""A deterministic fake backend (`fake:NAME`): an encoder and an LVLM with no model behind them.

Registered for every test in tests/conftest.py through `zsar_cli.backends.register_scheme`, never
in the package. It exists so the stages and the CLI can be tested end to end in milliseconds,
with outputs a test can recompute by hand. The registration lives in this process only: commands
run in-process (library calls, typer's CliRunner) see `fake:`, a `python -m zsar_cli` subprocess
does not (it never imports conftest).

Encoder: an image's embedding is a unit vector drawn from a generator seeded with the SHA-256 of
its pixels (shape and bytes), a text's from the SHA-256 of the text; `DIM` dimensions,
`LOGIT_SCALE`. Patch tokens: the same, of each cell of a 2×2 grid (row-major).

LVLM: p_yes = sigmoid(SHARPNESS · (brightness − offset(prompt))), brightness the mean pixel value
/ 255 over all of a prompt's images (0.5 without images), offset(text) the first 8 hex digits of
SHA-256(text) / 16⁸ in [0, 1); yes_mass = MASS · p_yes, no_mass = MASS · (1 − p_yes). Choice: the
softmax over options of −SHARPNESS · |brightness − offset(option)| (the question does not
matter). Generate: "brightness B of N images" (B to 3 decimals). No Self-ReS hooks: it is the
backend `check_family` refuses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from zsar_cli.backends.lvlm_base import YesNoScores

DIM = 16
LOGIT_SCALE = 20.0
PATCH_GRID = (2, 2)
SHARPNESS = 8.0
MASS = 0.9


def unit_vector(key: bytes) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(key).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(DIM)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def image_key(image: np.ndarray) -> bytes:
    pixels = np.ascontiguousarray(image, dtype=np.uint8)
    return str(pixels.shape).encode() + pixels.tobytes()


def offset(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 16**8


def brightness(images: Sequence[np.ndarray]) -> float:
    if not images:
        return 0.5
    return float(np.mean([np.asarray(im, dtype=np.float64).mean() for im in images]) / 255)


class FakeEncoder:
    """Implements `PatchTokenEncoder` with hashed embeddings."""

    def __init__(self, spec: str, precision: str = "fp32") -> None:
        self.spec = spec
        self.precision = precision
        self.logit_scale = LOGIT_SCALE
        self.dim = DIM
        self.patch_grid = PATCH_GRID

    def describe(self) -> dict[str, object]:
        return {
            "model_spec": self.spec,
            "pretrained": "fake",
            "preprocess": "none",
            "embedding_dim": self.dim,
            "logit_scale": self.logit_scale,
            "precision": self.precision,
        }

    def preprocess_images(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(im) for im in images]

    def encode_pixels(self, pixels: Any) -> np.ndarray:
        return np.stack([unit_vector(image_key(im)) for im in pixels]).reshape(-1, DIM)

    def encode_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return self.encode_pixels(self.preprocess_images(images))

    def encode_patch_tokens(self, images: Sequence[np.ndarray]) -> np.ndarray:
        rows, cols = PATCH_GRID
        out = []
        for im in images:
            h, w = im.shape[0] // rows, im.shape[1] // cols
            cells = [
                im[r * h : (r + 1) * h, c * w : (c + 1) * w]
                for r in range(rows)
                for c in range(cols)
            ]
            out.append(np.stack([unit_vector(image_key(cell)) for cell in cells]))
        return np.stack(out).reshape(-1, rows * cols, DIM)

    def encode_pixels_with_patches(self, pixels: Any) -> tuple[np.ndarray, np.ndarray]:
        return self.encode_pixels(pixels), self.encode_patch_tokens(pixels)

    def encode_images_with_patches(
        self, images: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.encode_pixels_with_patches(self.preprocess_images(images))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([unit_vector(t.encode()) for t in texts]).reshape(-1, DIM)


class FakeLVLM:
    """Implements `LVLM` (not `SelectionHooks`) from image brightness and prompt hashes."""

    def __init__(self, spec: str, options: dict[str, Any]) -> None:
        self.spec = spec
        self.options = options  # what the stage asked the loader for (device, batch_size, ...)

    def yes_no(
        self, images_per_prompt: Sequence[Sequence[np.ndarray]], prompts: Sequence[str]
    ) -> YesNoScores:
        z = [
            SHARPNESS * (brightness(ims) - offset(p))
            for ims, p in zip(images_per_prompt, prompts, strict=True)
        ]
        p_yes = 1 / (1 + np.exp(-np.asarray(z, dtype=np.float64)))
        return YesNoScores(p_yes=p_yes, yes_mass=MASS * p_yes, no_mass=MASS * (1 - p_yes))

    def choice_batch(
        self,
        images_per_prompt: Sequence[Sequence[np.ndarray]],
        questions: Sequence[str],
        options: Sequence[str],
    ) -> np.ndarray:
        rows = []
        for ims in images_per_prompt:
            logits = np.array([-SHARPNESS * abs(brightness(ims) - offset(o)) for o in options])
            weights = np.exp(logits - logits.max())
            rows.append(weights / weights.sum())
        return np.asarray(rows).reshape(len(images_per_prompt), len(options))

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
        return [
            f"brightness {brightness(ims):.3f} of {len(ims)} images" for ims in images_per_prompt
        ]


def load_fake_encoder(rest: str, precision: str = "fp32", **_options: Any) -> FakeEncoder:
    return FakeEncoder(f"fake:{rest}", precision)


def load_fake_lvlm(rest: str, **options: Any) -> FakeLVLM:
    return FakeLVLM(f"fake:{rest}", options)
