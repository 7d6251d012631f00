"""The order in which multiple-choice options are shown to an LVLM (`--option-order`).

No artifacts: pure functions over option lists and probability arrays, shared by `classify
--lvlm`, `query-lvlm --mode choice` (frames or Self-ReS tokens) and the answers → predictions
step, so the one-command and the staged route ask exactly the same prompts.

Why it matters: small LVLMs favour a letter (often A) regardless of content. `clip` keeps the
canonical order (CLIP's rank order after a shortlist), so CLIP's top-1 is always option A and
the LVLM's letter bias becomes a bias towards CLIP's choice. `shuffled` asks once in a seeded
random permutation per video (derived from the seed and the video id, so a video's order never
depends on which videos ran before it). `circular` is CircularEval: one ask per rotation of the
options (n asks for n options); each ask's letter probabilities are mapped back to labels and
averaged per label, so every label sits at every position exactly once and a pure position bias
cancels out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from zsar_cli.errors import ConfigError
from zsar_cli.options import OPTION_ORDERS as OPTION_ORDERS


def option_orders(count: int, order: str, seed: int = 0, video_id: str = "") -> list[list[int]]:
    """The orderings to ask in: each lists, per prompt position, the index of the canonical
    option shown there (`[2, 0, 1]`: option 2 is A, option 0 is B, option 1 is C)."""
    if count < 1:
        raise ConfigError("multiple choice needs at least one option")
    if order == "clip":
        return [list(range(count))]
    if order == "circular":
        # Rotation 0 is the canonical order, so its answer rows come first.
        return [[(r + p) % count for p in range(count)] for r in range(count)]
    if order == "shuffled":
        # A stable digest of the id (Python's hash() is salted per process).
        digest = int.from_bytes(hashlib.sha256(video_id.encode("utf-8")).digest()[:8], "little")
        rng = np.random.default_rng([seed, digest])
        return [[int(i) for i in rng.permutation(count)]]
    raise ConfigError(f"--option-order {order!r}: choose one of {', '.join(OPTION_ORDERS)}")


def positions(ordering: Sequence[int]) -> list[int]:
    """The inverse of an ordering: the prompt position of each canonical option."""
    out = [0] * len(ordering)
    for position, option in enumerate(ordering):
        out[option] = position
    return out


def ask_in_orders(
    ask: Callable[[list[str]], np.ndarray],
    options: Sequence[str],
    orderings: Sequence[Sequence[int]],
) -> np.ndarray:
    """(asks, options): row k = each canonical option's probability when asked in ordering k.

    `ask(shown)` returns the probabilities of the prompt's letters for the options in the order
    shown (A first)."""
    return np.stack([to_canonical(ask(shown(options, o)), o) for o in orderings])


def shown(options: Sequence[str], ordering: Sequence[int]) -> list[str]:
    """The options in the order one ask shows them."""
    return [options[i] for i in ordering]


def to_canonical(probs: Sequence[float] | np.ndarray, ordering: Sequence[int]) -> np.ndarray:
    """Letter probabilities of one ask (A first) as probabilities of the canonical options."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape != (len(ordering),):
        raise ValueError(f"expected {len(ordering)} option probabilities, got {probs.shape}")
    back = np.empty(len(ordering), dtype=np.float64)
    back[list(ordering)] = probs
    return back


def label_probabilities(asked: np.ndarray) -> np.ndarray:
    """Each canonical option's probability: the mean over the asks (rows of `ask_in_orders`)."""
    return np.asarray(asked, dtype=np.float64).mean(axis=0)


def rank_options(probs: np.ndarray) -> list[int]:
    """Option indices best first; equal probabilities keep the canonical order.

    Equal up to 1e-12: averages of the same numbers summed in another order differ in the last
    bits (a pure position bias averaged over rotations), and that noise must not reorder."""
    rounded = np.round(np.asarray(probs, dtype=np.float64), 12)
    return [int(i) for i in np.argsort(-rounded, kind="stable")]


def choice_rows(
    options: Sequence[str], orderings: Sequence[Sequence[int]], asked: np.ndarray | None
) -> Iterator[tuple[int, str, str, float | None]]:
    """`answers` rows of choice asks: (ordering, label, its letter in that ask, probability),
    per ordering the options in canonical order (so the first ask's rows list them as CLIP
    ranked them, and `predict` breaks ties the way classify --lvlm does)."""
    from zsar_cli.prompts import option_letters

    letters = option_letters(len(options))
    for k, ordering in enumerate(orderings):
        where = positions(ordering)
        for i, label in enumerate(options):
            yield k, label, letters[where[i]], None if asked is None else float(asked[k, i])
