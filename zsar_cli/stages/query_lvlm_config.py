"""Settings of the `query-lvlm` stage, free of heavy imports (the CLI reads defaults cheaply).
Each field's help, choices and range are its `zsar --help` entry (see zsar_cli.options).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from zsar_cli import options as o
from zsar_cli.errors import ConfigError
from zsar_cli.options import ConfigBase, opt

# Re-exported: prompt wording lives in zsar_cli.prompts (the world LVLM records it).
from zsar_cli.prompts import DEFAULT_CHOICE_QUESTION as DEFAULT_CHOICE_QUESTION
from zsar_cli.prompts import ZEAL_FRAME_PROMPT as ZEAL_FRAME_PROMPT

DEFAULT_MODEL = "hf:HuggingFaceTB/SmolVLM2-256M-Video-Instruct"
MODES: tuple[str, ...] = ("yesno", "choice", "generate")
LEVELS: tuple[str, ...] = ("frame", "clip")
QUERY_KINDS: tuple[str, ...] = ("start", "end", "class", "choice", "anomaly", "question")


@dataclass(frozen=True)
class QueryConfig(ConfigBase):
    """Which model answers, which questions are asked, at which level, and how."""

    # None: DEFAULT_MODEL, or with --tokens the model the tokens were selected with (so typing
    # the default spec explicitly is never mistaken for "not given").
    model: str | None = o.model(
        None,
        f"{o.LVLM_MODEL_HELP} Default: {DEFAULT_MODEL}; with --tokens, the model that selected "
        "them.",
    )
    mode: str = opt(
        "yesno",
        "yesno: p_yes from next-token logits; choice: lettered labels as options; "
        "generate: greedy text.",
        choices=MODES,
    )
    level: str = opt(
        "frame",
        "frame: one prompt per frame; clip: a segment's frames in one prompt.",
        choices=LEVELS,
    )
    question: str | None = opt(None, "Question to ask; with --labels it must contain {label}.")
    questions_file: str | None = opt(
        None,
        "File of questions (one per line, # comments), templates with {label}.",
        flags=("--questions",),
    )
    labels_file: str | None = opt(
        None,
        "Labels file: fills {label}; the options of --mode choice.",
        flags=("--labels", "-l"),
    )
    descriptions_file: str | None = opt(
        None,
        "Descriptions JSON/Parquet: asks each label's start and end question inside "
        "--frame-prompt.",
        flags=("--descriptions",),
    )
    frame_prompt: str = opt(
        ZEAL_FRAME_PROMPT, "Prompt around start/end questions ({label}, {question})."
    )
    choice_question: str = opt(
        DEFAULT_CHOICE_QUESTION, "The question of --mode choice before its options.", cli=False
    )
    shortlist_from: str | None = opt(
        None,
        "--mode choice: offer each video its top --shortlist labels of this predictions "
        "artifact (zsar classify), in CLIP's order, as classify --lvlm does (instead of "
        "--labels).",
        omit_unset=True,  # runs without a shortlist keep their cache keys
    )
    shortlist: int = opt(5, "With --shortlist-from: labels offered per video.", min=2)
    option_order: str = o.option_order("the order given: CLIP's rank order with --shortlist-from")
    option_seed: int = o.option_seed()
    query_kind: str | None = opt(
        None,
        "query_kind of --question rows (default: class with labels, else anomaly).",
        choices=QUERY_KINDS,
    )
    examples_file: str | None = opt(
        None,
        "In-context examples: CSV of source,label[,answer] (a video or FRAMES.parquet#VIDEO; "
        "answer yes/no in yes/no mode), shown with their answers before every query; never "
        "scored.",
        flags=("--examples",),
        omit_unset=True,  # runs without examples keep their cache keys
    )
    max_frames: int = opt(8, "At most this many frames per clip prompt (uniformly kept).", min=1)
    video_input: str = o.video_input("--level clip prompts")
    max_pixels: int = o.max_pixels()
    max_new_tokens: int = opt(32, "Generation length for --mode generate.", min=1)
    device: str = o.device()
    dtype: str = o.lvlm_dtype()
    batch_size: int = o.batch_size(8, "Prompts per forward pass.")
    trust_remote_code: bool = o.trust_remote_code()
    strict: bool = o.strict()
    # Served models (--model openai:URL#MODEL), zsar_cli.backends.openai_lvlm.
    top_logprobs: int = o.top_logprobs()
    request_concurrency: int = o.request_concurrency()
    request_timeout: float = o.request_timeout()
    request_retries: int = o.request_retries()

    def provenance(self) -> dict[str, object]:
        out = super().provenance()
        if not o.served_spec(self.model):
            # Only a served model's answers depend on it; local runs keep their cache keys.
            out.pop("top_logprobs")
        if self.shortlist_from is None:
            out.pop("shortlist")
        # Options are ordered only in choice mode: other runs keep their cache keys.
        o.drop_option_order(out, self.mode == "choice")
        if self.level == "frame":
            # Only clip prompts have a video layout: frame-level answers (and their cache keys)
            # do not depend on it.
            out.pop("video_input", None)
        return out

    def check(self) -> QueryConfig:
        if self.model is None:
            return replace(self, model=DEFAULT_MODEL).validated()
        if self.question is not None and self.questions_file is not None:
            raise ConfigError("--question and --questions are alternatives; give one")
        if "{question}" not in self.frame_prompt:
            raise ConfigError(f"--frame-prompt {self.frame_prompt!r} must contain {{question}}")
        if self.examples_file is not None:
            if self.mode == "generate":
                raise ConfigError("--examples works in --mode yesno and choice, not generate")
            if self.descriptions_file is not None:
                raise ConfigError(
                    "--examples works with --question/--questions, not --descriptions"
                )
        if self.shortlist_from is not None:
            if self.mode != "choice":
                raise ConfigError("--shortlist-from gives the options of --mode choice")
            if self.labels_file is not None:
                raise ConfigError(
                    "--shortlist-from takes each video's options from its predictions; drop "
                    "--labels"
                )
        if self.mode == "choice":
            if self.labels_file is None and self.shortlist_from is None:
                raise ConfigError("--mode choice needs --labels or --shortlist-from (the options)")
            if self.descriptions_file is not None:
                raise ConfigError("--mode choice does not use --descriptions")
        elif (
            self.question is None and self.questions_file is None and self.descriptions_file is None
        ):
            raise ConfigError("give --question, --questions or --descriptions (what to ask)")
        return self
