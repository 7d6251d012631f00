"""`--option-order`: the orderings multiple-choice options are asked in, and how their answers
map back to labels (zsar_cli.stages.option_order, classify --lvlm's re-ranking)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from zsar_cli.errors import ConfigError
from zsar_cli.stages.classify_lvlm import lvlm_rerank
from zsar_cli.stages.option_order import (
    ask_in_orders,
    label_probabilities,
    option_orders,
    positions,
    rank_options,
)
from zsar_cli.stages.select_tokens import FrameItem
from zsar_cli.stages.select_tokens_config import LVLMChoiceConfig

OPTIONS = ["walk", "run", "jump", "swim", "climb"]


class LetterBiased:
    """An LVLM that prefers letter A whatever the options are (pure position bias)."""

    spec = "test:letter-a"

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def choice(self, images: Sequence[np.ndarray], question: str, options: Sequence[str]):
        self.asked.append(list(options))
        probs = np.full(len(options), 0.4 / (len(options) - 1))
        probs[0] = 0.6
        return probs


class LabelPreferring:
    """An LVLM that knows the answer: most mass on one label wherever it is shown, the rest
    spread by a mild position bias (earlier letters a little likelier)."""

    spec = "test:knows"

    def __init__(self, label: str) -> None:
        self.label = label

    def choice(self, images: Sequence[np.ndarray], question: str, options: Sequence[str]):
        weights = np.array([1.0 + 0.1 * (len(options) - p) for p in range(len(options))])
        weights[list(options).index(self.label)] = 20.0
        return weights / weights.sum()


def test_orderings():
    assert option_orders(3, "clip") == [[0, 1, 2]]
    circular = option_orders(4, "circular")
    assert circular[0] == [0, 1, 2, 3] and len(circular) == 4
    for option in range(4):  # every option at every position exactly once
        assert sorted(positions(o)[option] for o in circular) == [0, 1, 2, 3]
    (shuffled,) = option_orders(5, "shuffled", seed=0, video_id="v1")
    assert sorted(shuffled) == list(range(5))
    # Derived from seed + video id only: the same whenever asked, another seed moves it.
    assert option_orders(5, "shuffled", 0, "v1") == [shuffled]
    others = {tuple(option_orders(5, "shuffled", s, "v1")[0]) for s in range(1, 20)}
    per_video = {tuple(option_orders(5, "shuffled", 0, f"v{i}")[0]) for i in range(20)}
    assert len(others) > 1 and len(per_video) > 1
    assert positions([2, 0, 1]) == [1, 2, 0]
    with pytest.raises(ConfigError, match="--option-order"):
        option_orders(3, "sorted")


def test_ask_in_orders_maps_letters_back_to_labels():
    lvlm = LetterBiased()
    orderings = option_orders(len(OPTIONS), "circular")
    asked = ask_in_orders(lambda shown: lvlm.choice([], "q", shown), OPTIONS, orderings)
    assert asked.shape == (5, 5)
    # Ask k showed OPTIONS[k] first: that label got A's probability in row k.
    assert [OPTIONS[int(np.argmax(row))] for row in asked] == OPTIONS
    assert lvlm.asked[1] == ["run", "jump", "swim", "climb", "walk"]
    np.testing.assert_allclose(label_probabilities(asked), np.full(5, 0.2))


@pytest.mark.parametrize("order", ["clip", "shuffled", "circular"])
def test_rerank_position_bias_and_knowledge(order):
    frames = [FrameItem(i, i / 4, -1, np.zeros((8, 8, 3), np.uint8)) for i in range(4)]
    config = LVLMChoiceConfig(option_order=order, option_seed=3, frames=4).validated()
    biased = lvlm_rerank(LetterBiased(), frames, "vid", OPTIONS, config, "cpu")  # type: ignore[arg-type]
    assert biased.sum() == pytest.approx(1.0)
    if order == "clip":  # A is CLIP's top-1: the bias hands it the prediction
        assert rank_options(biased)[0] == 0 and biased[0] == pytest.approx(0.6)
    elif order == "circular":  # every label was A once: all equal, ties keep CLIP's order
        np.testing.assert_allclose(biased, np.full(5, 0.2))
        assert rank_options(biased) == [0, 1, 2, 3, 4]
    else:  # the label the seeded permutation put first
        (ordering,) = option_orders(5, "shuffled", 3, "vid")
        assert rank_options(biased)[0] == ordering[0]
    for label in ("walk", "swim"):
        knows = lvlm_rerank(LabelPreferring(label), frames, "vid", OPTIONS, config, "cpu")  # type: ignore[arg-type]
        assert OPTIONS[rank_options(knows)[0]] == label


def test_option_order_in_the_cache_key():
    base = LVLMChoiceConfig().provenance()
    assert base["option_order"] == "circular" and "option_seed" not in base
    shuffled = LVLMChoiceConfig(option_order="shuffled", option_seed=2).provenance()
    assert shuffled["option_seed"] == 2
    with pytest.raises(ConfigError, match="--option-order 'x'"):
        LVLMChoiceConfig(option_order="x").validated()
