"""Settings of the `report` stage: how it scores (a ScoreConfig) and what it draws.

Free of heavy imports (matplotlib, numpy) so the CLI reads its defaults cheaply. Each field's help
and range are its `zsar --help` entry (see zsar_cli.options).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zsar_cli.options import ConfigBase, opt
from zsar_cli.stages.score_config import ScoreConfig


@dataclass(frozen=True)
class ReportConfig(ConfigBase):
    """Options of `zsar report` (CLI defaults come from here)."""

    score: ScoreConfig = field(default_factory=ScoreConfig)
    max_videos: int = opt(12, "Timelines drawn when --video is not given.", min=0)
    videos: tuple[str, ...] = opt(
        (), "Draw this video's timeline (repeatable).", flags=("--video",), metavar="VIDEO_ID"
    )
    max_classes: int = opt(20, "PR curves drawn (classes with the most ground truth first).", min=0)
    dpi: int = opt(100, "Resolution of the PNG figures.", min=10)
