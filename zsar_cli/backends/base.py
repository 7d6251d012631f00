"""Protocols the stages code against; backends (open_clip, ...) implement them.

Input: RGB frames (H×W×3 uint8 numpy arrays) and texts. Output: L2-normalised float32 arrays.
Stages never import a backend module directly: they get an object from the registry
(`zsar_cli.backends.load_encoder(spec)`) and use only what is declared here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Encoder(Protocol):
    """An image-text encoder with a joint embedding space (CLIP family)."""

    spec: str
    """The spec it was loaded from, e.g. `openclip:ViT-B-32/laion2b_s34b_b79k`."""
    logit_scale: float
    """Multiplier of cosine similarities before a softmax (CLIP's learned temperature)."""
    dim: int
    """Embedding size D."""

    def encode_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, D) float32, L2-normalised, from RGB uint8 frames of any size."""
        ...

    def preprocess_images(self, images: Sequence[np.ndarray]) -> Any:
        """The model's own transform applied to each frame: a batch for `encode_pixels`.

        `encode_images(x)` equals `encode_pixels(preprocess_images(x))`; the two halves exist so
        callers can time them apart or preprocess in another thread.
        """
        ...

    def encode_pixels(self, pixels: Any) -> np.ndarray:
        """(N, D) float32, L2-normalised, from a `preprocess_images` batch."""
        ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(M, D) float32, L2-normalised."""
        ...

    def describe(self) -> dict[str, object]:
        """Model facts recorded in artifact metadata (spec, pretrained, preprocess, dim, ...)."""
        ...


@runtime_checkable
class PatchTokenEncoder(Encoder, Protocol):
    """An encoder that can also return its patch tokens projected into the joint space."""

    patch_grid: tuple[int, int]
    """(rows, cols) of the patch grid; tokens are listed row-major."""

    def encode_pixels_with_patches(self, pixels: Any) -> tuple[np.ndarray, np.ndarray]:
        """As `encode_images_with_patches`, from a `preprocess_images` batch."""
        ...

    def encode_images_with_patches(
        self, images: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """((N, D) image embeddings, (N, rows*cols, D) L2-normalised patch tokens), one forward."""
        ...

    def encode_patch_tokens(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, rows*cols, D) float32 L2-normalised patch tokens."""
        ...
