"""Settings of the `localize` stage, kept free of heavy imports so the CLI can read its defaults
without importing numpy/pyarrow (`zsar --help` stays fast). No artifacts are read or written here.
"""

from __future__ import annotations

from dataclasses import dataclass

from zsar_cli.errors import ConfigError

METHODS = ("zeal", "clip", "anomaly")
COMPAT_MODES = ("zeal",)
ANOMALY_SOURCES = ("clip", "lvlm")
BOUNDARY_MODES = ("answers", "presence")


@dataclass(frozen=True)
class LocalizeConfig:
    """Settings of `zsar localize`; the CLI's defaults come from here (ZEAL's own values)."""

    method: str = "zeal"
    compat: str | None = None
    # class filtering (ZEAL stage 3)
    top_k: int = 3
    filter_frames: int = 8
    use_gt_labels: bool = False
    # ZEAL stage 5
    eps: float = 0.05
    top_p: float = 0.35
    min_gap: int = 5
    max_len: float = 0.95
    lam: float = 0.1
    sigma: float = 1.3
    drop: float = 0.1
    merge_iou: float = 0.9
    score_threshold: float = 0.0
    min_mean_score: float = 0.1
    # "answers": start/end p_yes as given (ZEAL); "presence": boundaries derived from presence-
    # like answers (see localize_zeal.presence_boundaries; not part of ZEAL)
    boundaries: str = "answers"
    # CLIP-only baseline (T3AL's training-free part)
    window: int = 20
    max_gap: int = 20
    min_frames: int = 2
    pseudo_labels: int = 1
    # anomaly
    source: str = "clip"
    normal_labels: tuple[str, ...] = ("Normal",)
    anomaly_labels: tuple[str, ...] = ()
    smooth: int = 5
    threshold: float = 0.5
    # CLIP's logit scale (None: the encoder's, from the artifacts' metadata, else 100)
    logit_scale: float | None = None

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"--method {self.method!r}: choose one of {', '.join(METHODS)}")
        if self.compat is not None and self.compat not in COMPAT_MODES:
            raise ConfigError(f"--compat {self.compat!r}: known modes: {', '.join(COMPAT_MODES)}")
        if self.compat is not None and self.method != "zeal":
            raise ConfigError("--compat zeal applies to --method zeal only")
        if self.boundaries not in BOUNDARY_MODES:
            raise ConfigError(
                f"--boundaries {self.boundaries!r}: choose {' or '.join(BOUNDARY_MODES)}"
            )
        if self.source not in ANOMALY_SOURCES:
            raise ConfigError(f"--source {self.source!r}: choose {' or '.join(ANOMALY_SOURCES)}")
        checks = [
            (0 <= self.eps < 0.5, "--eps must be in [0, 0.5)"),
            (0 < self.top_p <= 1, "--top-p must be in (0, 1]"),
            (self.min_gap >= 0, "--min-gap must be ≥ 0"),
            (self.max_len > 0, "--max-len must be > 0"),
            (0 <= self.lam <= 1, "--lambda must be in [0, 1]"),
            (self.sigma > 0, "--sigma must be > 0"),
            (self.top_k >= 1, "--top-k must be ≥ 1"),
            (self.filter_frames >= 1, "--filter-frames must be ≥ 1"),
            (self.window >= 1, "--window must be ≥ 1"),
            (self.smooth >= 1, "--smooth must be ≥ 1"),
            (self.pseudo_labels >= 1, "--pseudo-labels must be ≥ 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
