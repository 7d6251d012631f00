"""Settings of the `classify` stage, free of heavy imports (the CLI reads its defaults cheaply).
Each field's help, choices and range are its `zsar --help` entry (see zsar_cli.options).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zsar_cli import options as o
from zsar_cli.errors import ConfigError
from zsar_cli.options import ConfigBase, opt
from zsar_cli.stages.encode_config import DEFAULT_MODEL, PromptConfig

POOLINGS: tuple[str, ...] = ("mean-embedding", "mean-prob")


@dataclass(frozen=True)
class ClassifyConfig(ConfigBase):
    """Everything that decides a video's ranked labels, plus how the run executes."""

    # None: the model that made an embeddings input, else DEFAULT_MODEL (see classify()).
    model: str | None = o.model(
        None,
        f"{o.CLIP_MODEL_HELP} Default: the model that made an embeddings input, else "
        f"{DEFAULT_MODEL}.",
    )
    num_frames: int = opt(
        8, "Frames sampled uniformly per video.", flags=("--num-frames", "-n"), min=1
    )
    size: int | None = opt(
        None, "Decode frames with the shorter side resized to SIZE (faster).", min=8
    )
    pooling: str = opt(
        "mean-embedding",
        "mean-embedding (mean of frame embeddings, renormalised) or mean-prob (mean of per-frame "
        "probabilities).",
        choices=POOLINGS,
    )
    top_k: int = opt(
        5, "Labels shown per video (the artifact keeps every label).", min=1, run_only=True
    )
    prompts: PromptConfig = field(default_factory=PromptConfig)
    adapter: str | None = opt(
        None,
        "An adapter artifact (zsar adapt): its head's logits are added to the text logits, and "
        "its support videos are not scored.",
        omit_unset=True,
        metavar="ADAPTER",
    )
    adapter_weight: float | None = opt(
        None,
        "Weight of the adapter's logits (0 = zero-shot exactly; default: the adapter's own).",
        min=0,
        omit_unset=True,
    )
    # Where the files are, not what is classified: the resolved paths key the predictions.
    root: str | None = opt(
        None,
        "Kinetics CSV inputs: the folder holding the downloaded clips (root/<label>/ or flat; "
        "default: the CSV's folder).",
        run_only=True,
        metavar="DIR",
    )
    device: str = o.device()
    precision: str = o.precision()
    batch_size: int = o.batch_size(32, "Images per model forward (spanning videos).")
    workers: int = o.workers(2)
    strict: bool = o.strict()

    def check(self) -> ClassifyConfig:
        if self.adapter_weight is not None and self.adapter is None:
            raise ConfigError("--adapter-weight needs --adapter ADAPTER")
        return self
