"""Settings of the `adapt` stage, free of heavy imports (the CLI reads its defaults cheaply).
Each field's help, choices and range are its `zsar --help` entry (see zsar_cli.options).
"""

from __future__ import annotations

from dataclasses import dataclass

from zsar_cli import options as o
from zsar_cli.options import ConfigBase, opt
from zsar_cli.stages.encode_config import DEFAULT_MODEL

# The heads of zsar_cli.stages.adapt_heads (a test checks both lists agree).
METHODS: tuple[str, ...] = ("gda", "tip-adapter", "prototypes")


@dataclass(frozen=True)
class AdaptConfig(ConfigBase):
    """How the support clips are embedded and which head is fitted on them."""

    method: str = opt(
        "gda",
        "gda (Gaussian discriminant, shared covariance), tip-adapter (cache of the support "
        "embeddings) or prototypes (class mean embeddings).",
        choices=METHODS,
    )
    model: str | None = o.model(
        None,
        f"{o.CLIP_MODEL_HELP} Default: the model that made an embeddings input, else "
        f"{DEFAULT_MODEL}.",
    )
    num_frames: int = opt(
        8, "Frames sampled uniformly per support video.", flags=("--num-frames", "-n"), min=1
    )
    size: int | None = opt(
        None, "Decode frames with the shorter side resized to SIZE (faster).", min=8
    )
    shots: int | None = opt(
        None,
        "Use at most K clips per class: the first K of each class in input order (default: all).",
        min=1,
        metavar="K",
    )
    weight: float = opt(
        1.0,
        "Default weight of the head's logits when they are added to the zero-shot text logits "
        "(classify/localize --adapter-weight overrides it; 0 = zero-shot).",
        min=0,
    )
    beta: float = opt(5.5, "tip-adapter: sharpness β of the affinity exp(-β(1 - cos)).", gt=0)
    shrinkage: float | None = opt(
        None,
        "gda: shrinkage γ of the covariance towards a scaled identity (default: the Ledoit-Wolf "
        "estimate).",
        min=0,
        max=1,
    )
    device: str = o.device()
    precision: str = o.precision()
    batch_size: int = o.batch_size(32, "Images per model forward (spanning videos).")
    workers: int = o.workers(2)
