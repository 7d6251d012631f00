"""Settings of the `score` stage (and of `report`, which scores the same way).

Free of heavy imports so the CLI reads its defaults without numpy/pyarrow (`zsar --help` fast);
the tIoU presets themselves live in zsar_cli.metrics. Each field's help, choices and range are its
`zsar --help` entry (see zsar_cli.options).
"""

from __future__ import annotations

from dataclasses import dataclass

from zsar_cli.options import ConfigBase, opt

PRESET_NAMES: tuple[str, ...] = ("thumos", "anet")  # 0.3:0.1:0.7 | 0.5:0.05:0.95
PRESET_BY_FORMAT = {"thumos14": "thumos", "activitynet": "anet"}
COMPAT_MODES: tuple[str, ...] = ("anet",)
# The same as zsar_cli.datasets.GT_FORMATS and zsar_cli.metrics.FILL_MODES (tests check both).
GT_FORMATS: tuple[str, ...] = (
    "ucf101",
    "hmdb51",
    "thumos14",
    "activitynet",
    "ucf_crime",
    "list",
    "artifact",
)
FILL_MODES: tuple[str, ...] = ("nearest", "previous")
AMBIGUOUS_MODES: tuple[str, ...] = ("exclude", "ignore")


def parse_tiou(text: str) -> tuple[float, ...]:
    """`0.3,0.5,0.7` or `start:step:stop` (see zsar_cli.metrics.parse_tiou; numpy on use)."""
    from zsar_cli.metrics import parse_tiou as parse

    return parse(text)


@dataclass(frozen=True)
class ScoreConfig(ConfigBase):
    """Options of `zsar score` (CLI defaults come from here)."""

    gt_format: str | None = opt(
        None, "Ground-truth format (default: detected from the path).", choices=GT_FORMATS
    )
    tiou: tuple[float, ...] | None = opt(
        None,
        "tIoU thresholds: comma list or start:step:stop (default: by --preset, else by the GT "
        "format: THUMOS14 0.3:0.1:0.7, ActivityNet 0.5:0.05:0.95).",
        gt=0,
        max=1,
        parse=parse_tiou,
    )
    preset: str | None = opt(
        None, "Threshold preset: thumos or anet (overridden by --tiou).", choices=PRESET_NAMES
    )
    compat: str | None = opt(
        None,
        "anet: rank tied scores as ActivityNet's eval_detection.py does (numpy's unstable "
        "argsort) and keep its 0/0 tIoU arithmetic. Default: stable sort.",
        choices=COMPAT_MODES,
    )
    subset_classes: int | None = opt(
        None, "Also report mAP over K random classes per split (zero-shot protocol).", min=1
    )
    subset_splits: int = opt(10, "Number of random class splits for --subset-classes.", min=1)
    seed: int = opt(0, "Seed of the class splits.")
    split: int = opt(1, "UCF101 testlist / HMDB51 split number for folders.")
    subset: str | None = opt(
        None, "ActivityNet subset to keep, e.g. validation (default: all videos)."
    )
    label: str | None = opt(
        None, "Anomaly: use frame_scores rows of this label (default: unlabelled)."
    )
    fill: str = opt(
        "nearest",
        "Anomaly: score of unsampled frames from the nearest or previous scored frame.",
        choices=FILL_MODES,
    )
    ambiguous: str = opt(
        "exclude",
        "THUMOS14 Ambiguous spans: exclude false positives overlapping them (devkit) or ignore "
        "the spans.",
        choices=AMBIGUOUS_MODES,
    )

    def thresholds(self, gt_format: str | None) -> tuple[float, ...]:
        from zsar_cli.metrics import ANET_TIOU, THUMOS_TIOU

        presets = {"thumos": THUMOS_TIOU, "anet": ANET_TIOU}
        if self.tiou:
            return tuple(self.tiou)
        if self.preset:
            return presets[self.preset]
        return presets[PRESET_BY_FORMAT.get(gt_format or "", "thumos")]


TASK_BY_KIND = {
    "predictions": "classification",
    "intervals": "localization",
    "frame_scores": "anomaly",
}
