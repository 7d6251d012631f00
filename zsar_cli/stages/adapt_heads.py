"""Training-free few-shot heads over CLIP image embeddings (the maths of `zsar adapt`).

Input: support embeddings with class indices (one L2-normalised embedding per support clip, and
for GDA every frame embedding of those clips). Output: a `Head` whose `logits(queries)` gives one
logit per class for each query embedding. Pure numpy; `adapt.py` reads the support and writes
and reads the `adapter` artifact, classify/localize add the logits to CLIP's text logits.

The three heads, as their papers define them (written here from those definitions):

- **prototypes**: p_k = the mean of class k's support embeddings, renormalised;
  logit_k(f) = s · cos(f, p_k), s = the encoder's logit scale (the text logits' own scale).
- **tip-adapter** (Zhang et al., ECCV 2022, the training-free variant): a cache of the support
  embeddings F (N×D) with one-hot labels L (N×C); affinity A = exp(-β (1 - f·Fᵀ)) and
  logits = A·L. The paper adds α·A·L to the zero-shot logits: α is the combination weight.
- **gda** (Wang et al., ICLR 2024, "A hard-to-beat baseline for training-free CLIP-based
  adaptation"): Gaussian classes with a shared covariance Σ; with class means μ_k and priors π_k
  the Bayes classifier is linear: w_k = Σ⁻¹μ_k, b_k = -½ μ_kᵀΣ⁻¹μ_k + log π_k.

GDA's samples are the support clips' *frame* embeddings (each frame a sample of its clip's
class): one clip per class still shows how a class varies (motion, noise), where clip-level
samples would give a zero covariance at one shot. The regulariser: the pooled within-class
covariance S (divided by N - C) is shrunk towards a scaled identity,
Σ = (1 - γ) S + γ (tr S / D) I, with γ the Ledoit-Wolf estimate (scikit-learn) unless given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from zsar_cli.errors import ConfigError, InputError
from zsar_cli.stages.adapt_config import METHODS

# Tip-Adapter's β and α (= our combination weight) as the paper's training-free default.
TIP_BETA = 5.5


def normalise_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


@dataclass(frozen=True)
class Head:
    """A fitted head: `logits(f)` is N×C for N query embeddings (rows of `classes` order).

    `class_vectors` (C×D) and `bias` (C) are the prototypes (bias 0) or GDA's w_k and b_k;
    `support` (N×D) and `support_labels` (N class indices) are Tip-Adapter's cache (kept for
    every method: they are the support clips' embeddings)."""

    method: str
    classes: tuple[str, ...]
    class_vectors: np.ndarray
    bias: np.ndarray
    support: np.ndarray
    support_labels: np.ndarray
    scale: float = 100.0
    beta: float = TIP_BETA
    details: dict[str, float] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.support.shape[1])

    def logits(self, queries: np.ndarray) -> np.ndarray:
        f = np.atleast_2d(np.asarray(queries, dtype=np.float64))
        if self.method == "prototypes":
            return self.scale * (normalise_rows(f) @ self.class_vectors.T)
        if self.method == "tip-adapter":
            affinity = np.exp(-self.beta * (1.0 - normalise_rows(f) @ self.support.T))
            onehot = np.eye(len(self.classes))[self.support_labels]
            return affinity @ onehot
        if self.method == "gda":
            return f @ self.class_vectors.T + self.bias
        raise ConfigError(f"adapter method {self.method!r}: choose one of {', '.join(METHODS)}")


def class_index(labels: Sequence[str]) -> tuple[tuple[str, ...], np.ndarray]:
    """(classes sorted by name, each label's class index)."""
    classes = tuple(sorted(set(labels)))
    pos = {c: i for i, c in enumerate(classes)}
    return classes, np.asarray([pos[lb] for lb in labels], dtype=np.int64)


def prototypes(clip_emb: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """C×D: each class's mean normalised support embedding, renormalised."""
    f = normalise_rows(np.asarray(clip_emb, dtype=np.float64))
    means = np.stack([f[y == k].mean(axis=0) for k in range(n_classes)])
    return normalise_rows(means)


def ledoit_wolf_gamma(centred: np.ndarray) -> float:
    from sklearn.covariance import ledoit_wolf_shrinkage

    return float(ledoit_wolf_shrinkage(centred, assume_centered=True))


def gda(
    samples: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    priors: np.ndarray,
    shrinkage: float | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """(W C×D, b C, γ): the shared-covariance Gaussian discriminant (see the module docstring)."""
    x = np.asarray(samples, dtype=np.float64)
    n, dim = x.shape
    means = np.stack([x[y == k].mean(axis=0) for k in range(n_classes)])
    centred = x - means[y]
    within = centred.T @ centred / max(1, n - n_classes)
    level = float(np.trace(within)) / dim
    if level <= 1e-12:
        raise InputError(
            "gda: the support shows no variation within a class (one frame per clip and one clip "
            "per class?); sample more frames (--num-frames) or give more clips, or use "
            "--method prototypes"
        )
    gamma = ledoit_wolf_gamma(centred) if shrinkage is None else float(shrinkage)
    cov = (1.0 - gamma) * within + gamma * level * np.eye(dim)
    try:
        w = np.linalg.solve(cov, means.T).T
    except np.linalg.LinAlgError:
        raise ConfigError(
            f"gda: the covariance is singular with --shrinkage {gamma:g}; use a value > 0"
        ) from None
    b = -0.5 * np.einsum("kd,kd->k", w, means) + np.log(priors)
    return w, b, gamma


def fit(
    method: str,
    labels: Sequence[str],
    clip_emb: np.ndarray,
    frame_emb: Sequence[np.ndarray],
    *,
    scale: float,
    beta: float = TIP_BETA,
    shrinkage: float | None = None,
) -> Head:
    """Fit `method` on support clips: their labels, clip embeddings (N×D) and per-clip frame
    embeddings (for GDA)."""
    if method not in METHODS:
        raise ConfigError(f"--method {method!r}: choose one of {', '.join(METHODS)}")
    classes, y = class_index(labels)
    support = normalise_rows(np.asarray(clip_emb, dtype=np.float64))
    c = len(classes)
    protos = prototypes(support, y, c)
    details: dict[str, float] = {}
    if method == "gda":
        priors = np.bincount(y, minlength=c) / len(y)
        samples = np.concatenate([np.asarray(f, dtype=np.float64) for f in frame_emb])
        frame_y = np.concatenate([np.full(len(f), k) for f, k in zip(frame_emb, y, strict=True)])
        vectors, bias, gamma = gda(samples, frame_y, c, priors, shrinkage)
        details["shrinkage"] = gamma
    else:
        vectors, bias = protos, np.zeros(c)
    return Head(method, classes, vectors, bias, support, y, float(scale), float(beta), details)
