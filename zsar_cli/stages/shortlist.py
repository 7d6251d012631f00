"""The options of multiple-choice questions per video: every label, or CLIP's shortlist.

Input: a `predictions` artifact (`zsar classify`, CLIP) for `--shortlist-from PREDICTIONS
--shortlist N`: each video is offered its top N labels in CLIP's rank order, as `classify --lvlm`
offers them; without it, every video is offered the labels file. Output: no artifact; the
options and the orderings they are asked in (zsar_cli.stages.option_order) per video, for
select-tokens (the selection prompt), query-lvlm --mode choice and predict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from zsar_cli.errors import InputError
from zsar_cli.stages.option_order import option_orders


class NoOptions(InputError):
    """A video has no options to offer (not in the predictions, or its CLIP row is an error):
    an error row, the batch goes on."""


@dataclass(frozen=True)
class Ranking:
    """One video's CLIP ranking: every label best first (empty for an error row)."""

    labels: tuple[str, ...]
    true_label: str | None = None
    error: str | None = None


def read_rankings(path: str | Path) -> tuple[str, dict[str, Ranking]]:
    """The cache key of a `predictions` artifact and each video's ranking (by rank)."""
    from zsar_cli.artifacts import read_artifact

    art = read_artifact(path, "predictions")
    cols = art.table.to_pydict()
    n = art.table.num_rows
    grouped: dict[str, list[tuple[int, str]]] = {}
    truth: dict[str, str | None] = {}
    errors: dict[str, str | None] = {}
    for i in range(n):
        vid = cols["video_id"][i]
        grouped.setdefault(vid, [])
        truth.setdefault(vid, (cols.get("true_label") or [None] * n)[i])
        error = (cols.get("error") or [None] * n)[i]
        if error is not None:
            errors[vid] = error
        elif cols["label"][i] is not None:
            grouped[vid].append((int(cols["rank"][i]), cols["label"][i]))
    rankings = {
        vid: Ranking(
            tuple(label for _, label in sorted(rows)) if vid not in errors else (),
            truth[vid],
            errors.get(vid),
        )
        for vid, rows in grouped.items()
    }
    return art.meta.cache_key, rankings


@dataclass(frozen=True)
class ChoiceOptions:
    """What each video is offered and in which orders: `labels` for every video, or with
    `rankings` (from --shortlist-from) each video's top `shortlist` labels in CLIP order."""

    labels: tuple[str, ...] = ()
    order: str = "clip"
    seed: int = 0
    rankings: Mapping[str, Ranking] | None = field(default=None, compare=False)
    shortlist: int = 5
    source: str = ""  # the predictions artifact, for messages

    def for_video(self, video_id: str) -> tuple[list[str], list[list[int]]]:
        """The video's options in their canonical order, and the orderings to ask them in."""
        if self.rankings is None:
            options = list(self.labels)
        else:
            ranking = self.rankings.get(video_id)
            if ranking is None:
                raise NoOptions(f"{video_id}: not in --shortlist-from {self.source}")
            if ranking.error is not None:
                raise NoOptions(f"{video_id}: no CLIP shortlist ({ranking.error})")
            options = list(ranking.labels[: self.shortlist])
        if not options:
            raise NoOptions(f"{video_id}: no options to choose from")
        return options, option_orders(len(options), self.order, self.seed, video_id)


def choice_options(config: object, labels: list[str]) -> tuple[ChoiceOptions, list[str]]:
    """The ChoiceOptions of a config with `shortlist_from`, `shortlist`, `option_order`,
    `option_seed` (select-tokens, query-lvlm) and the upstream keys they add."""
    source = getattr(config, "shortlist_from", None)
    order = getattr(config, "option_order", "clip")
    seed = int(getattr(config, "option_seed", 0))
    if source is None:
        return ChoiceOptions(tuple(labels), order, seed), []
    key, rankings = read_rankings(source)
    shortlist = int(getattr(config, "shortlist", 5))
    return ChoiceOptions((), order, seed, rankings, shortlist, str(source)), [key]
