"""Settings of the `select-tokens` stage (Self-Reflective Sampling), free of heavy imports so the
CLI reads its defaults without importing numpy/pyarrow/torch (`zsar --help` stays fast).
"""

from __future__ import annotations

from dataclasses import dataclass

from zsar_cli import options as o
from zsar_cli.errors import ConfigError
from zsar_cli.options import ConfigBase, opt
from zsar_cli.prompts import DEFAULT_CHOICE_QUESTION

DEFAULT_MODEL = "hf:HuggingFaceTB/SmolVLM2-256M-Video-Instruct"
SCORERS: tuple[str, ...] = ("attention", "similarity", "clip")
EMBEDDING_DTYPES: tuple[str, ...] = o.STORAGE_DTYPES


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


LAYERS_HELP = "Decoder layers averaged: all, or e.g. 0,2,-1 (negative from the end)."
BUDGET_HELP = (
    "Tokens kept per video, split evenly across paths (default: the tokens of --baseline-frames "
    "frames)."
)
BASELINE_FRAMES_HELP = "Default budget = the token count of this many frames."


@dataclass(frozen=True)
class SelectTokensConfig(ConfigBase):
    """Which model scores which visual tokens for which question, and how many are kept.

    `budget` is the total number of kept tokens per video (per label with `{label}` questions),
    split evenly across reflection paths; None means the token count of `baseline_frames`
    linearly sampled frames. `segments` re-splits each video's frames into that many equal
    paths; None uses the frames' own `segment` column (extract-frames --segments).
    """

    model: str = o.model(DEFAULT_MODEL, f"{o.LVLM_MODEL_HELP} Not used by --scorer clip.")
    question: str | None = opt(
        None, "The question tokens are selected for; with --labels it has {label}.", required=True
    )
    labels_file: str | None = opt(
        None, "Labels file: one selection per label ({label}).", flags=("--labels", "-l")
    )
    shortlist_from: str | None = opt(
        None,
        "Select for the multiple-choice prompt of classify --lvlm --self-res: --question then "
        "each video's top --shortlist labels of this predictions artifact (zsar classify) as "
        "options, in CLIP's order.",
        omit_unset=True,  # runs without a shortlist keep their cache keys
    )
    shortlist: int = opt(5, "With --shortlist-from: labels offered per video.", min=2)
    scorer: str = opt(
        "attention",
        "attention: attention of the last input token; similarity: cosine of hidden states to "
        "the last token's; clip: CLIP patch tokens vs the question (no LVLM).",
        choices=SCORERS,
    )
    layers: tuple[int, ...] = opt((), LAYERS_HELP, parse=parse_layers, cli_default="all")
    budget: int | None = opt(None, BUDGET_HELP, min=1)
    baseline_frames: int = opt(16, BASELINE_FRAMES_HELP, min=1)
    segments: int | None = opt(
        None,
        "Split each video's frames into R equal paths (default: the frames' segments).",
        min=1,
    )
    embedding_dtype: str = o.storage_dtype("token embeddings")
    video_input: str = o.video_input("reflection paths and the final pass")
    max_pixels: int = o.max_pixels()
    device: str = o.device()
    dtype: str = o.lvlm_dtype()
    trust_remote_code: bool = o.trust_remote_code()
    strict: bool = o.strict()

    def provenance(self) -> dict[str, object]:
        out = super().provenance()
        if self.shortlist_from is None:
            out.pop("shortlist")
        if self.scorer == "clip":  # CLIP patch tokens: no LVLM input at all
            out.pop("video_input")
        return out

    def check(self) -> SelectTokensConfig:
        if not self.question:
            raise ConfigError("give --question (what the tokens are selected for)")
        if self.shortlist_from is not None:
            if self.labels_file is not None or "{label}" in self.question:
                raise ConfigError(
                    "--shortlist-from selects once per video for its options; drop --labels "
                    "and {label}"
                )
            if self.scorer == "clip":
                raise ConfigError("--shortlist-from needs an LVLM scorer (attention, similarity)")
        if self.labels_file is not None and "{label}" not in self.question:
            raise ConfigError("--labels needs a --question containing {label}")
        if self.labels_file is None and "{label}" in self.question:
            raise ConfigError("--question uses {label}; give --labels")
        return self


@dataclass(frozen=True)
class LVLMChoiceConfig(ConfigBase):
    """`classify --lvlm`: CLIP shortlists `shortlist` labels, the LVLM picks among them (choice
    mode) from `frames` linearly sampled frames, or with `self_res` from Self-ReS tokens of
    `segments` × `frames_per_segment` densely sampled frames (budget as in select-tokens)."""

    model: str = o.model(DEFAULT_MODEL, o.LVLM_MODEL_HELP)
    self_res: bool = opt(
        False,
        "With --lvlm: answer from Self-ReS tokens of densely sampled segments instead of "
        "linearly sampled frames.",
    )
    shortlist: int = opt(5, "With --lvlm: CLIP's top labels offered to the LVLM.", min=2)
    examples_file: str | None = opt(
        None,
        "With --lvlm: in-context examples, a CSV of source,label (a video or "
        "FRAMES.parquet#VIDEO) shown with their answer's letter before each question (those "
        "whose label is on the shortlist); never scored.",
        flags=("--examples",),
        omit_unset=True,  # runs without examples keep their cache keys
    )
    question: str = opt(DEFAULT_CHOICE_QUESTION, "With --lvlm: the question before the options.")
    option_order: str = o.option_order()
    option_seed: int = o.option_seed()
    frames: int = opt(16, "With --lvlm: frames linearly sampled per video.", min=1)
    video_input: str = o.video_input("the frames (linear, or --self-res paths and final pass)")
    segments: int = opt(4, "With --self-res: segments (reflection paths) per video.", min=1)
    frames_per_segment: int = opt(8, "With --self-res: frames per segment.", min=1)
    scorer: str = opt(
        "attention",
        "With --self-res: token scorer, attention or similarity.",
        choices=("attention", "similarity"),
    )
    layers: tuple[int, ...] = opt((), LAYERS_HELP, parse=parse_layers, cli_default="all")
    budget: int | None = opt(
        None, f"With --self-res: {BUDGET_HELP[0].lower()}{BUDGET_HELP[1:]}", min=1
    )
    baseline_frames: int = opt(16, BASELINE_FRAMES_HELP, min=1)
    max_pixels: int = o.max_pixels()
    dtype: str = o.lvlm_dtype()
    trust_remote_code: bool = o.trust_remote_code()

    def provenance(self) -> dict[str, object]:
        return o.drop_option_order(super().provenance())

    def check(self) -> LVLMChoiceConfig:
        if self.examples_file is not None and self.self_res:
            raise ConfigError("--examples cannot be combined with --self-res yet")
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
            video_input=self.video_input,
            max_pixels=self.max_pixels,
            device=device,
            dtype=self.dtype,
            trust_remote_code=self.trust_remote_code,
        )
