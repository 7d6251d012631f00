"""Settings of the `query-lvlm` stage, free of heavy imports (the CLI reads defaults cheaply)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from zsar_cli.errors import ConfigError

# Re-exported: prompt wording lives in zsar_cli.prompts (the world LVLM records it).
from zsar_cli.prompts import DEFAULT_CHOICE_QUESTION as DEFAULT_CHOICE_QUESTION
from zsar_cli.prompts import ZEAL_FRAME_PROMPT as ZEAL_FRAME_PROMPT

DEFAULT_MODEL = "hf:HuggingFaceTB/SmolVLM2-256M-Video-Instruct"
MODES: tuple[str, ...] = ("yesno", "choice", "generate")
LEVELS: tuple[str, ...] = ("frame", "clip")
QUERY_KINDS: tuple[str, ...] = ("start", "end", "class", "choice", "anomaly", "question")
# How a run executes, never what it writes: kept out of the cache key.
RUN_ONLY_FIELDS = frozenset({"device", "batch_size", "strict"})


@dataclass(frozen=True)
class QueryConfig:
    """Which model answers, which questions are asked, at which level, and how."""

    # None: DEFAULT_MODEL, or with --tokens the model the tokens were selected with (so typing
    # the default spec explicitly is never mistaken for "not given").
    model: str | None = None
    mode: str = "yesno"
    level: str = "frame"
    question: str | None = None
    questions_file: str | None = None
    labels_file: str | None = None
    descriptions_file: str | None = None
    frame_prompt: str = ZEAL_FRAME_PROMPT
    choice_question: str = DEFAULT_CHOICE_QUESTION
    query_kind: str | None = None
    max_frames: int = 8
    max_pixels: int = 512 * 512
    max_new_tokens: int = 32
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 8
    trust_remote_code: bool = False
    strict: bool = False

    def validated(self) -> QueryConfig:
        if self.model is None:
            return replace(self, model=DEFAULT_MODEL).validated()
        if self.mode not in MODES:
            raise ConfigError(f"--mode {self.mode!r}: choose one of {', '.join(MODES)}")
        if self.level not in LEVELS:
            raise ConfigError(f"--level {self.level!r}: choose one of {', '.join(LEVELS)}")
        if self.query_kind is not None and self.query_kind not in QUERY_KINDS:
            raise ConfigError(f"--query-kind {self.query_kind!r}: one of {', '.join(QUERY_KINDS)}")
        for name in (
            "max_frames",
            "max_pixels",
            "max_new_tokens",
            "batch_size",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 1")
        if self.question is not None and self.questions_file is not None:
            raise ConfigError("--question and --questions are alternatives; give one")
        if "{question}" not in self.frame_prompt:
            raise ConfigError(f"--frame-prompt {self.frame_prompt!r} must contain {{question}}")
        if self.mode == "choice":
            if self.labels_file is None:
                raise ConfigError("--mode choice needs --labels (the options)")
            if self.descriptions_file is not None:
                raise ConfigError("--mode choice does not use --descriptions")
        elif (
            self.question is None and self.questions_file is None and self.descriptions_file is None
        ):
            raise ConfigError("give --question, --questions or --descriptions (what to ask)")
        return self

    def provenance(self) -> dict[str, object]:
        return {k: v for k, v in asdict(self).items() if k not in RUN_ONLY_FIELDS}
