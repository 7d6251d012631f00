"""Settings of the `encode`, `encode-text` (and, through PromptConfig, `classify`) stages.

Free of heavy imports so the CLI reads its defaults without numpy/pyarrow (`zsar --help` fast).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from zsar_cli.errors import ConfigError

DEFAULT_MODEL = "openclip:ViT-B-32/laion2b_s34b_b79k"
DTYPE_NAMES: tuple[str, ...] = ("float16", "float32")
# How a run executes, never what it writes: kept out of the cache key.
RUN_ONLY_FIELDS = frozenset({"device", "batch_size", "strict"})


@dataclass(frozen=True)
class EncodeConfig:
    """Which model embeds the frames, how, and how embeddings are stored."""

    model: str = DEFAULT_MODEL
    device: str = "auto"
    precision: str = "fp32"
    batch_size: int = 32
    dtype: str = "float16"
    patch_tokens: bool = False
    strict: bool = False

    def validated(self) -> EncodeConfig:
        if self.dtype not in DTYPE_NAMES:
            raise ConfigError(f"--dtype {self.dtype!r}: choose one of {', '.join(DTYPE_NAMES)}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1 (got {self.batch_size})")
        return self

    def provenance(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if k not in RUN_ONLY_FIELDS}


@dataclass(frozen=True)
class PromptConfig:
    """How label prompts are made (see zsar_cli.labels.build_prompts)."""

    templates: str = "video"
    descriptions: str | None = None
    random_descriptors: int = 0
    seed: int = 0

    def validated(self) -> PromptConfig:
        if self.random_descriptors < 0:
            raise ConfigError(f"--random-descriptors must be >= 0 (got {self.random_descriptors})")
        if self.descriptions is not None and self.random_descriptors:
            raise ConfigError("--descriptions and --random-descriptors are alternatives; give one")
        from zsar_cli.labels import resolve_templates  # numpy: only when validating

        resolve_templates(self.templates)
        return self


@dataclass(frozen=True)
class TextEncodeConfig:
    """`encode-text`: model plus prompt settings."""

    model: str = DEFAULT_MODEL
    device: str = "auto"
    precision: str = "fp32"
    batch_size: int = 256
    prompts: PromptConfig = field(default_factory=PromptConfig)

    def provenance(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if k not in RUN_ONLY_FIELDS}
