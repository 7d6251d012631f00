"""Settings of the `score` stage (and of `report`, which scores the same way).

Free of heavy imports so the CLI reads its defaults without numpy/pyarrow (`zsar --help` fast);
the tIoU presets themselves live in zsar_cli.metrics. Each field's help, choices and range are its
`zsar --help` entry (see zsar_cli.options).
"""

from __future__ import annotations

from dataclasses import dataclass

from zsar_cli.errors import ConfigError
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
    "ucf_crime_split",
    "charades_sta",
    "list",
    "artifact",
    "kinetics",
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
    seed: int = opt(0, "Seed of the class splits (--subset-classes, --class-splits).")
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

    exclude_classes: tuple[str, ...] = opt(
        (),
        "Classification: drop this class's ground-truth videos and rank the other labels only "
        "(repeatable; UCF-Crime's 13-class protocol is --exclude-class Normal).",
        flags=("--exclude-class",),
        metavar="CLASS",
        keyed_if_set=True,
    )
    class_splits: str | None = opt(
        None,
        "Classification, zero-shot class splits: half:N (N splits of half the classes), KxN (K "
        "classes), novel:KxN (K of the classes not in --base-classes), or a file of splits (one "
        "per line, classes separated by ';', or a JSON list of lists). Each split keeps its "
        "classes' videos and ranks its classes only; mean ± std over splits (seeded by --seed).",
        omit_unset=True,
        metavar="SPEC",
    )
    base_classes: str | None = opt(
        None,
        "Labels file of the seen classes for --class-splits novel:KxN (e.g. Kinetics-400's, to "
        "draw from the classes Kinetics-600 adds).",
        omit_unset=True,
        metavar="LABELS",
    )
    frames: str | None = opt(
        None,
        "Anomaly: a frames artifact whose frame_count column gives each video's length, so the "
        "frames after the last sample are evaluated too (only video_id, frame_count are read).",
        omit_unset=True,
        metavar="FRAMES",
    )

    def check(self) -> ScoreConfig:
        if self.base_classes is not None and not (self.class_splits or "").startswith("novel:"):
            raise ConfigError("--base-classes is used only with --class-splits novel:KxN")
        novel = (self.class_splits or "").startswith("novel:")
        if novel and self.base_classes is None:
            raise ConfigError(
                f"--class-splits {self.class_splits}: novel classes need --base-classes"
            )
        return self

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
