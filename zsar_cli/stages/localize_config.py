"""Settings of the `localize` stage, kept free of heavy imports so the CLI can read its defaults
without importing numpy/pyarrow (`zsar --help` stays fast). No artifacts are read or written here.
Each field's help, choices and range are its `zsar --help` entry (see zsar_cli.options).
"""

from __future__ import annotations

from dataclasses import dataclass

from zsar_cli.errors import ConfigError
from zsar_cli.options import ConfigBase, opt

METHODS = ("zeal", "clip", "anomaly", "grounding")
# Only --method grounding reads these; other methods keep their cache keys without them.
GROUNDING_FIELDS = ("moments", "min_moment", "nms_iou")
COMPAT_MODES = ("zeal",)
ANOMALY_SOURCES = ("clip", "lvlm")
BOUNDARY_MODES = ("answers", "presence")


@dataclass(frozen=True)
class LocalizeConfig(ConfigBase):
    """Settings of `zsar localize`; the CLI's defaults come from here (ZEAL's own values)."""

    method: str = opt(
        "zeal",
        "zeal (LVLM boundaries + CLIP actionness), clip (CLIP-only baseline), anomaly "
        "(per-frame anomaly scores) or grounding (moments of free-text --queries).",
        choices=METHODS,
    )
    compat: str | None = opt(
        None,
        "zeal: reproduce the reference ZEAL code's stage 5 exactly, quirks included (see "
        "ZEAL_NOTES.md).",
        choices=COMPAT_MODES,
    )
    # class filtering (ZEAL stage 3)
    top_k: int = opt(3, "Labels kept by class filtering.", min=1)
    filter_frames: int = opt(8, "Uniformly spaced frames averaged for class filtering.", min=1)
    # set by --gt-labels FILE (the file itself is an input, not a setting)
    use_gt_labels: bool = opt(False, "Ground-truth labels instead of class filtering.", cli=False)
    # ZEAL stage 5
    eps: float = opt(0.05, "Min-max maps scores into [eps, 1-eps].", min=0, lt=0.5)
    top_p: float = opt(0.35, "Fraction of frames that are start/end candidates.", gt=0, max=1)
    min_gap: int = opt(5, "Minimum distance in frames between kept candidates.", min=0)
    max_len: float = opt(0.95, "Longest interval as a fraction of the video's frames.", gt=0)
    lam: float = opt(
        0.1,
        "Weight of start+end p_yes vs mean CLIP actionness.",
        flags=("--lambda",),
        min=0,
        max=1,
    )
    sigma: float = opt(1.3, "Gaussian soft-NMS sigma.", gt=0)
    drop: float = opt(0.1, "Soft-NMS drops intervals whose decayed score is below this.")
    merge_iou: float = opt(0.9, "Merge consecutive intervals whose IoU exceeds this.")
    score_threshold: float = opt(0.0, "Drop merged intervals scoring below this.")
    min_mean_score: float = opt(
        0.1, "Skip a filtered label whose mean start/end p_yes is below this."
    )
    # "answers": start/end p_yes as given (ZEAL); "presence": boundaries derived from presence-
    # like answers (see localize_zeal.presence_boundaries; not part of ZEAL)
    boundaries: str = opt(
        "answers",
        "zeal: answers (start/end p_yes as given, ZEAL) or presence (derive start/end from "
        "presence-like answers: visible now and not before/after; not part of ZEAL).",
        choices=BOUNDARY_MODES,
    )
    # CLIP-only baseline (T3AL's training-free part)
    window: int = opt(20, "clip: moving-average window in frames.", min=1)
    max_gap: int = opt(20, "clip: frames this close join one segment.")
    min_frames: int = opt(2, "clip: shortest segment in frames.")
    pseudo_labels: int = opt(1, "clip: video pseudo-labels localized per video.", min=1)
    # anomaly
    source: str = opt(
        "clip",
        "anomaly: clip (anomaly labels vs normal prompts) or lvlm (p_yes of anomaly questions in "
        "--answers).",
        choices=ANOMALY_SOURCES,
    )
    normal_labels: tuple[str, ...] = opt(
        ("Normal",),
        "anomaly: a normal-prompt label in --text (repeatable).",
        flags=("--normal",),
        metavar="LABEL",
    )
    anomaly_labels: tuple[str, ...] = opt(
        (),
        "anomaly: an anomaly label (repeatable; default every non-normal label).",
        flags=("--anomaly-label",),
        metavar="LABEL",
    )
    smooth: int = opt(5, "anomaly, grounding: moving-average window in frames (1 = none).", min=1)
    threshold: float = opt(0.5, "anomaly: frames scoring at least this form intervals.")
    # free-text moment grounding (localize_grounding)
    moments: int = opt(5, "grounding: ranked moments kept per query (R@5 needs 5).", min=1)
    min_moment: float = opt(
        0.05, "grounding: shortest moment, as a fraction of the video.", gt=0, max=1
    )
    nms_iou: float = opt(
        0.5, "grounding: a moment overlapping a better one more than this is dropped.", gt=0, max=1
    )
    # a head from `zsar adapt` added to the text logits (clip and anomaly --source clip)
    adapter: str | None = opt(
        None,
        "clip, anomaly --source clip: an adapter artifact (zsar adapt) whose head's logits are "
        "added to the text logits of every frame; its support videos are not scored.",
        omit_unset=True,
        metavar="ADAPTER",
    )
    adapter_weight: float | None = opt(
        None,
        "Weight of the adapter's logits (0 = without it; default: the adapter's own).",
        min=0,
        omit_unset=True,
    )
    # CLIP's logit scale (None: the encoder's, from the artifacts' metadata, else 100)
    logit_scale: float | None = opt(
        None, "CLIP logit scale (default: the encoder's, from the artifacts, else 100)."
    )

    def provenance(self) -> dict[str, object]:
        out = super().provenance()
        if self.method != "grounding":
            for name in GROUNDING_FIELDS:
                out.pop(name, None)
        return out

    def check(self) -> LocalizeConfig:
        if self.compat is not None and self.method != "zeal":
            raise ConfigError("--compat zeal applies to --method zeal only")
        if self.adapter_weight is not None and self.adapter is None:
            raise ConfigError("--adapter-weight needs --adapter ADAPTER")
        if self.adapter is not None and (
            self.method == "zeal" or (self.method == "anomaly" and self.source == "lvlm")
        ):
            raise ConfigError(
                "--adapter scores CLIP frame embeddings: use it with --method clip or "
                "--method anomaly --source clip"
            )
        return self
