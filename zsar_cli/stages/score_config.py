"""Settings of the `score` stage: `ScoreConfig` (the CLI's defaults come from here) and the
tIoU presets. No artifacts are read or written here.
"""

from __future__ import annotations

from dataclasses import dataclass

from zsar_cli.errors import ConfigError
from zsar_cli.metrics import ANET_TIOU, FILL_MODES, THUMOS_TIOU

TASK_BY_KIND = {
    "predictions": "classification",
    "intervals": "localization",
    "frame_scores": "anomaly",
}
PRESETS = {"thumos": THUMOS_TIOU, "anet": ANET_TIOU}
PRESET_BY_FORMAT = {"thumos14": "thumos", "activitynet": "anet"}
COMPAT_MODES = ("anet",)
AMBIGUOUS_MODES = ("exclude", "ignore")


@dataclass(frozen=True)
class ScoreConfig:
    """Options of `zsar score` (CLI defaults come from here)."""

    gt_format: str | None = None  # None: detected from the path
    tiou: tuple[float, ...] | None = None  # None: by --preset, else by the GT format
    preset: str | None = None  # thumos (0.3:0.1:0.7) | anet (0.5:0.05:0.95)
    compat: str | None = None  # "anet": ActivityNet's unstable argsort tie order, NaN arithmetic
    subset_classes: int | None = None  # mAP over K random classes per split (zero-shot protocol)
    subset_splits: int = 10
    seed: int = 0
    split: int = 1  # UCF101 testlist / HMDB51 split number
    subset: str | None = None  # ActivityNet subset to keep (None: all videos)
    label: str | None = None  # frame_scores label rows to use for anomaly (None: unlabelled rows)
    fill: str = "nearest"  # how unscored frames get a score: nearest | previous scored frame
    ambiguous: str = "exclude"  # THUMOS14 Ambiguous spans: exclude overlapping FPs | ignore

    def validate(self) -> None:
        if self.preset is not None and self.preset not in PRESETS:
            raise ConfigError(f"--preset {self.preset!r}: choose {' or '.join(PRESETS)}")
        if self.compat is not None and self.compat not in COMPAT_MODES:
            raise ConfigError(f"--compat {self.compat!r}: choose {' or '.join(COMPAT_MODES)}")
        if self.fill not in FILL_MODES:
            raise ConfigError(f"--fill {self.fill!r}: choose {' or '.join(FILL_MODES)}")
        if self.ambiguous not in AMBIGUOUS_MODES:
            raise ConfigError(f"--ambiguous {self.ambiguous!r}: choose exclude or ignore")
        if self.subset_classes is not None and self.subset_classes < 1:
            raise ConfigError("--subset-classes must be >= 1")
        if self.subset_splits < 1:
            raise ConfigError("--subset-splits must be >= 1")
        if self.tiou is not None and any(not 0 < t <= 1 for t in self.tiou):
            raise ConfigError("--tiou thresholds must lie in (0, 1]")

    def thresholds(self, gt_format: str | None) -> tuple[float, ...]:
        if self.tiou:
            return tuple(self.tiou)
        if self.preset:
            return PRESETS[self.preset]
        return PRESETS[PRESET_BY_FORMAT.get(gt_format or "", "thumos")]
