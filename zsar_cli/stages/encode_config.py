"""Settings of the `encode`, `encode-text` (and, through PromptConfig, `classify`) stages.

Free of heavy imports so the CLI reads its defaults without numpy/pyarrow (`zsar --help` fast).
Each field's help, choices and range are its `zsar --help` entry (see zsar_cli.options).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zsar_cli import options as o
from zsar_cli.errors import ConfigError
from zsar_cli.options import ConfigBase, opt

DEFAULT_MODEL = "openclip:ViT-B-32/laion2b_s34b_b79k"


@dataclass(frozen=True)
class EncodeConfig(ConfigBase):
    """Which model embeds the frames, how, and how embeddings are stored."""

    model: str = o.model(DEFAULT_MODEL, o.CLIP_MODEL_HELP)
    device: str = o.device()
    precision: str = o.precision()
    batch_size: int = o.batch_size(32)
    dtype: str = o.storage_dtype("embeddings")
    patch_tokens: bool = opt(
        False,
        "Also store each frame's patch tokens, projected into the joint space "
        "(column patch_tokens; grid in the metadata).",
    )
    strict: bool = o.strict()


@dataclass(frozen=True)
class PromptConfig(ConfigBase):
    """How label prompts are made (see zsar_cli.labels.build_prompts)."""

    templates: str = opt(
        "video",
        "Prompt templates: none (bare label), video (built-in ensemble of 8), or a file with one "
        "template per line containing {}.",
    )
    descriptions: str | None = opt(
        None,
        "Descriptions JSON/Parquet: each label is scored by the mean similarity over its "
        "'{label}, which has {descriptor}' prompts.",
    )
    random_descriptors: int = opt(
        0,
        "Control: K random-word descriptors per label instead of real ones (fixed --seed).",
        min=0,
        metavar="K",
    )
    seed: int = opt(0, "Seed of --random-descriptors.")

    def check(self) -> PromptConfig:
        if self.descriptions is not None and self.random_descriptors:
            raise ConfigError("--descriptions and --random-descriptors are alternatives; give one")
        from zsar_cli.labels import resolve_templates  # numpy: only when validating

        resolve_templates(self.templates)
        return self


@dataclass(frozen=True)
class TextEncodeConfig(ConfigBase):
    """`encode-text`: model plus prompt settings."""

    model: str = o.model(DEFAULT_MODEL, o.CLIP_MODEL_HELP)
    device: str = o.device()
    precision: str = o.precision()
    batch_size: int = o.batch_size(256, "Prompts per model forward.")
    prompts: PromptConfig = field(default_factory=PromptConfig)
