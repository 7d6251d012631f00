"""Stage `predict`: multiple-choice answers → ranked predictions (the staged classify --lvlm).

Input: an `answers` artifact of `query-lvlm --mode choice` (frames, clips or Self-ReS tokens),
and with `--shortlist-from` the CLIP `predictions` artifact its options were shortlisted from.
Output: a `predictions` artifact as `classify` writes it (one row per video and label: score,
rank 1 = best, true_label, error), so `zsar score` reads it.

A label's score is the mean of its option probabilities over the video's rows: over the
orderings it was asked in (`--option-order circular`: every rotation) and, for frame- or
segment-level answers, over the frames or clips. The offered labels come first by score (equal
scores keep the order they were offered in, CLIP's rank order after a shortlist), then the
shortlist's other labels in CLIP order with score 0, exactly as `classify --lvlm` ranks them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from zsar_cli.artifacts import ArtifactWriter, read_artifact
from zsar_cli.errors import InputError
from zsar_cli.outputs import scoped
from zsar_cli.stages.classify import VideoResult, predictions_table
from zsar_cli.stages.option_order import rank_options
from zsar_cli.stages.predict_config import PredictConfig as PredictConfig
from zsar_cli.stages.shortlist import Ranking, read_rankings


def predictions_from_answers(
    answers: pa.Table, rankings: Mapping[str, Ranking] | None = None
) -> list[VideoResult]:
    """One ranking per video of choice `answers` (in the order videos first appear)."""
    cols = answers.to_pydict()
    per_video: dict[str, dict[str, list[float]]] = {}
    errors: dict[str, str] = {}
    for i in range(answers.num_rows):
        vid, label, p = cols["video_id"][i], cols["label"][i], cols["p_yes"][i]
        offered = per_video.setdefault(vid, {})
        if cols["error"][i] is not None or label is None or p is None:
            errors.setdefault(vid, cols["error"][i] or "no option probability")
            continue
        offered.setdefault(label, []).append(float(p))  # dicts keep the offered order
    results = []
    for vid, offered in per_video.items():
        ranking = rankings.get(vid) if rankings is not None else None
        res = VideoResult(vid, None, ranking.true_label if ranking is not None else None)
        if not offered:  # no usable answer: the video's error row
            res.error = errors.get(vid, "no answers")
            results.append(res)
            continue
        labels = list(offered)
        # The same arithmetic as classify --lvlm (option_order.label_probabilities).
        probs = np.array([np.mean(np.asarray(offered[lab], dtype=np.float64)) for lab in labels])
        order = rank_options(probs)
        res.labels = [labels[i] for i in order]
        res.scores = [float(probs[i]) for i in order]
        if ranking is not None:
            rest = [lab for lab in ranking.labels if lab not in offered]
            res.labels += rest
            res.scores += [0.0] * len(rest)
        results.append(res)
    return results


@dataclass
class PredictSummary:
    videos: int
    failed: int
    rows: int
    cache_key: str = ""


@scoped
def run(
    answers: str | Path, output: str | Path, config: PredictConfig, force: bool = False
) -> PredictSummary:
    """Turn a choice `answers` artifact into a `predictions` artifact."""
    cfg = config.validated()
    art = read_artifact(answers, "answers")
    mode = art.meta.extra_json("mode")
    if mode != "choice":
        raise InputError(
            f"{answers}: predictions come from query-lvlm --mode choice answers, not {mode}"
        )
    asked_with: Any = art.meta.config.get("shortlist_from")
    upstream = [art.meta.cache_key]
    rankings = None
    if cfg.shortlist_from is not None:
        key, rankings = read_rankings(cfg.shortlist_from)
        if art.meta.upstream and key not in art.meta.upstream:
            raise InputError(
                f"{answers}: its options were not shortlisted from {cfg.shortlist_from} "
                "(cache keys differ)"
            )
        upstream.append(key)
    elif asked_with is not None:
        raise InputError(
            f"{answers}: its options are a shortlist of {asked_with}; give --shortlist-from "
            "that predictions artifact (its other labels follow with score 0)"
        )
    results = predictions_from_answers(art.table, rankings)
    table = predictions_table(results)
    with ArtifactWriter(
        output,
        "predictions",
        cfg.provenance(),
        upstream=upstream,
        extra_metadata={
            "lvlm_spec": art.meta.extra_json("model_spec"),
            "lvlm_revision": art.meta.extra_json("model_revision"),
            "level": art.meta.extra_json("level"),
        },
        force=force,
    ) as writer:
        writer.write(table)
    failed = sum(1 for r in results if r.error is not None)
    return PredictSummary(len(results), failed, table.num_rows, writer.cache_key)
