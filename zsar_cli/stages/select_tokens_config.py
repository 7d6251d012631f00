"""Settings of the `select-tokens` stage (Self-Reflective Sampling), free of heavy imports so the
CLI reads its defaults without importing numpy/pyarrow/torch (`zsar --help` stays fast).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from zsar_cli.errors import ConfigError
from zsar_cli.prompts import DEFAULT_CHOICE_QUESTION

DEFAULT_MODEL = "hf:HuggingFaceTB/SmolVLM2-256M-Video-Instruct"
SCORERS: tuple[str, ...] = ("attention", "similarity", "clip")
EMBEDDING_DTYPES: tuple[str, ...] = ("float16", "float32")
# How a run executes, never what it writes: kept out of the cache key.
RUN_ONLY_FIELDS = frozenset({"device", "strict"})


def parse_layers(text: str) -> tuple[int, ...]:
    """`all` → () (every decoder layer); `0,2,-1` → (0, 2, -1) (negative counts from the end)."""
    text = text.strip()
    if text.lower() in ("", "all"):
        return ()
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise ConfigError(
            f"--layers {text!r}: expected 'all' or comma-separated layer numbers (e.g. 0,2,-1)"
        ) from None


@dataclass(frozen=True)
class SelectTokensConfig:
    """Which model scores which visual tokens for which question, and how many are kept.

    `budget` is the total number of kept tokens per video (per label with `{label}` questions),
    split evenly across reflection paths; None means the token count of `baseline_frames`
    linearly sampled frames. `segments` re-splits each video's frames into that many equal
    paths; None uses the frames' own `segment` column (extract-frames --segments).
    """

    model: str = DEFAULT_MODEL
    question: str | None = None
    labels_file: str | None = None
    scorer: str = "attention"
    layers: tuple[int, ...] = ()
    budget: int | None = None
    baseline_frames: int = 16
    segments: int | None = None
    embedding_dtype: str = "float16"
    max_pixels: int = 512 * 512
    device: str = "auto"
    dtype: str = "auto"
    trust_remote_code: bool = False
    strict: bool = False

    def validated(self) -> SelectTokensConfig:
        if self.scorer not in SCORERS:
            raise ConfigError(f"--scorer {self.scorer!r}: choose one of {', '.join(SCORERS)}")
        if self.embedding_dtype not in EMBEDDING_DTYPES:
            raise ConfigError(
                f"--embedding-dtype {self.embedding_dtype!r}: one of {', '.join(EMBEDDING_DTYPES)}"
            )
        if not self.question:
            raise ConfigError("give --question (what the tokens are selected for)")
        if self.labels_file is not None and "{label}" not in self.question:
            raise ConfigError("--labels needs a --question containing {label}")
        if self.labels_file is None and "{label}" in self.question:
            raise ConfigError("--question uses {label}; give --labels")
        if self.budget is not None and self.budget < 1:
            raise ConfigError(f"--budget must be >= 1 (got {self.budget})")
        if self.baseline_frames < 1:
            raise ConfigError(f"--baseline-frames must be >= 1 (got {self.baseline_frames})")
        if self.segments is not None and self.segments < 1:
            raise ConfigError(f"--segments must be >= 1 (got {self.segments})")
        if self.max_pixels < 1:
            raise ConfigError(f"--max-pixels must be >= 1 (got {self.max_pixels})")
        return self

    def provenance(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if k not in RUN_ONLY_FIELDS}


@dataclass(frozen=True)
class LVLMChoiceConfig:
    """`classify --lvlm`: CLIP shortlists `shortlist` labels, the LVLM picks among them (choice
    mode) from `frames` linearly sampled frames, or with `self_res` from Self-ReS tokens of
    `segments` × `frames_per_segment` densely sampled frames (budget as in select-tokens)."""

    model: str = DEFAULT_MODEL
    self_res: bool = False
    shortlist: int = 5
    question: str = DEFAULT_CHOICE_QUESTION
    frames: int = 16
    segments: int = 4
    frames_per_segment: int = 8
    scorer: str = "attention"
    layers: tuple[int, ...] = ()
    budget: int | None = None
    baseline_frames: int = 16
    max_pixels: int = 512 * 512
    dtype: str = "auto"
    trust_remote_code: bool = False

    def validated(self) -> LVLMChoiceConfig:
        if self.shortlist < 2:
            raise ConfigError(f"--shortlist must be >= 2 (got {self.shortlist})")
        for name in ("frames", "segments", "frames_per_segment", "baseline_frames"):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1")
        if self.scorer not in ("attention", "similarity"):
            raise ConfigError(f"--scorer {self.scorer!r}: classify uses attention or similarity")
        if self.budget is not None and self.budget < 1:
            raise ConfigError(f"--budget must be >= 1 (got {self.budget})")
        return self

    def selection(self, device: str) -> SelectTokensConfig:
        """The select-tokens settings of the Self-ReS path (paths = the decoded segments)."""
        return SelectTokensConfig(
            model=self.model,
            question=self.question,
            scorer=self.scorer,
            layers=self.layers,
            budget=self.budget,
            baseline_frames=self.baseline_frames,
            max_pixels=self.max_pixels,
            device=device,
            dtype=self.dtype,
            trust_remote_code=self.trust_remote_code,
        )
