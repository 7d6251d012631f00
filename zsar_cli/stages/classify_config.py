"""Settings of the `classify` stage, free of heavy imports (the CLI reads its defaults cheaply)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from zsar_cli.errors import ConfigError
from zsar_cli.stages.encode_config import PromptConfig

POOLINGS: tuple[str, ...] = ("mean-embedding", "mean-prob")
RUN_ONLY_FIELDS = frozenset({"device", "batch_size", "workers", "strict", "top_k"})


@dataclass(frozen=True)
class ClassifyConfig:
    """Everything that decides a video's ranked labels, plus how the run executes."""

    # None: the model that made an embeddings input, else DEFAULT_MODEL (see classify()).
    model: str | None = None
    num_frames: int = 8
    size: int | None = None
    pooling: str = "mean-embedding"
    top_k: int = 5
    prompts: PromptConfig = field(default_factory=PromptConfig)
    device: str = "auto"
    precision: str = "fp32"
    batch_size: int = 32
    workers: int = 2
    strict: bool = False

    def validated(self) -> ClassifyConfig:
        if self.pooling not in POOLINGS:
            raise ConfigError(f"--pooling {self.pooling!r}: choose one of {', '.join(POOLINGS)}")
        if self.num_frames < 1:
            raise ConfigError(f"--num-frames must be >= 1 (got {self.num_frames})")
        if self.top_k < 1:
            raise ConfigError(f"--top-k must be >= 1 (got {self.top_k})")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1 (got {self.batch_size})")
        if self.workers < 1:
            raise ConfigError(f"--workers must be >= 1 (got {self.workers})")
        self.prompts.validated()
        return self

    def provenance(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if k not in RUN_ONLY_FIELDS}
