"""Settings of the `predict` stage (choice answers → predictions), free of heavy imports so the
CLI reads its defaults without importing numpy/pyarrow.
"""

from __future__ import annotations

from dataclasses import dataclass

from zsar_cli.options import ConfigBase, opt


@dataclass(frozen=True)
class PredictConfig(ConfigBase):
    """Where the labels outside the offered options come from."""

    shortlist_from: str | None = opt(
        None,
        "The predictions artifact the answers' options were shortlisted from (query-lvlm "
        "--shortlist-from): its other labels follow in CLIP's order with score 0, its "
        "true_label is kept.",
        omit_unset=True,
    )
