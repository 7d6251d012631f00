"""Config fields that describe their own command-line option, and the options stages share.

A stage's frozen `<Stage>Config` dataclass declares each field with `opt(default, help, ...)`:
its help text, flags, choices, numeric range, whether it only changes how a run executes
(`run_only`: kept out of the cache key; `omit_unset`: kept out while None; `keyed_if_set`: in
it only when not the default) and whether it is an option at all (`cli`). From that one
declaration `ConfigBase.validated()` checks values (one-line `ConfigError` naming the option),
`ConfigBase.provenance()` picks what goes into the cache key, and `zsar_cli.cli.build` makes the
typer options, so each default, help text and range lives in one place.

The factories at the end (`device()`, `batch_size()`, `strict()`, ...) are the options that recur
across stages, written once; a dataclass field cannot be shared between classes, hence functions.

No artifacts are read or written here; the module is torch/numpy-free (`zsar --help` imports it).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from zsar_cli.errors import ConfigError

METADATA_KEY = "zsar.option"

# Model weight precisions of open_clip (zsar_cli.backends.openclip.PRECISIONS) and torch dtypes of
# the Hugging Face LVLM backend (zsar_cli.backends.hf_lvlm.DTYPES, plus auto); tests check both.
PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "bf16")
LVLM_DTYPES: tuple[str, ...] = ("auto", "float32", "float16", "bfloat16")
STORAGE_DTYPES: tuple[str, ...] = ("float16", "float32")


@dataclass(frozen=True)
class Opt:
    """What a config field means on the command line (stored in the field's metadata)."""

    help: str
    # Option names; empty: --field-name (for a bool: --field-name/--no-field-name).
    flags: tuple[str, ...] = ()
    choices: tuple[str, ...] | None = None
    # Numeric range: min/max inclusive, gt/lt exclusive. None values are never checked; tuple
    # values are checked element by element.
    min: float | None = None
    max: float | None = None
    gt: float | None = None
    lt: float | None = None
    # How the run executes, never what it writes (device, batch size, ...): not in the cache key.
    run_only: bool = False
    # Left out of the cache key while None, so an option added later (e.g. `--adapter`) moves
    # no key of the runs that do not use it.
    omit_unset: bool = False
    # In the cache key only when it differs from the default: an option added later keeps the
    # keys of artifacts made before it (their content is what the default gives).
    keyed_if_set: bool = False
    cli: bool = True
    # The command line must give it (the library default stays for other callers).
    required: bool = False
    metavar: str | None = None
    # A str option parsed into the field's value (e.g. "0,2,-1" → (0, 2, -1)); a ValueError is a
    # usage error. `cli_default` is the default as typed on the command line.
    parse: Callable[[str], Any] | None = None
    cli_default: str | None = None

    def has_range(self) -> bool:
        return any(b is not None for b in (self.min, self.max, self.gt, self.lt))

    def in_range(self, value: float) -> bool:
        return (
            (self.min is None or value >= self.min)
            and (self.max is None or value <= self.max)
            and (self.gt is None or value > self.gt)
            and (self.lt is None or value < self.lt)
        )

    def range_text(self) -> str:
        """The range in words: ">= 1", "> 0", "in (0, 1]"."""
        low_end = ("[", self.min) if self.min is not None else ("(", self.gt)
        high_end = ("]", self.max) if self.max is not None else (")", self.lt)
        (low_bracket, low), (high_bracket, high) = low_end, high_end
        if low is not None and high is not None:
            return f"in {low_bracket}{_num(low)}, {_num(high)}{high_bracket}"
        if low is not None:
            return f"{'>=' if low_bracket == '[' else '>'} {_num(low)}"
        return f"{'<=' if high_bracket == ']' else '<'} {_num(high or 0)}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def opt(
    default: Any = dataclasses.MISSING,
    help: str = "",
    *,
    default_factory: Any = dataclasses.MISSING,
    flags: tuple[str, ...] = (),
    choices: tuple[str, ...] | None = None,
    min: float | None = None,
    max: float | None = None,
    gt: float | None = None,
    lt: float | None = None,
    run_only: bool = False,
    omit_unset: bool = False,
    keyed_if_set: bool = False,
    cli: bool = True,
    required: bool = False,
    metavar: str | None = None,
    parse: Callable[[str], Any] | None = None,
    cli_default: str | None = None,
) -> Any:
    """A dataclass field with its option metadata (see `Opt`)."""
    meta = Opt(
        help=help,
        flags=flags,
        choices=choices,
        min=min,
        max=max,
        gt=gt,
        lt=lt,
        run_only=run_only,
        omit_unset=omit_unset,
        keyed_if_set=keyed_if_set,
        cli=cli,
        required=required,
        metavar=metavar,
        parse=parse,
        cli_default=cli_default,
    )
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={METADATA_KEY: meta}
    )


def option_of(field: dataclasses.Field[Any]) -> Opt | None:
    """The field's option metadata; None for a plain field (e.g. a nested config)."""
    meta = field.metadata.get(METADATA_KEY)
    return meta if isinstance(meta, Opt) else None


def flag_of(field: dataclasses.Field[Any]) -> str:
    """The long option that sets this field, as messages name it (`--num-frames`)."""
    meta = option_of(field)
    for flag in meta.flags if meta is not None else ():
        if flag.startswith("--"):
            return flag.split("/")[0]
    return "--" + field.name.replace("_", "-")


C = TypeVar("C", bound="ConfigBase")


class ConfigBase:
    """Validation and provenance of the stage configs, from their fields' `opt` metadata.

    `validated()` checks every field's choices and range, validates nested configs, then runs the
    config's own cross-field `check()` (which may return a completed copy). `provenance()` is the
    config without its `run_only` fields: what decides the artifact's content, the cache key.
    """

    def validated(self: C) -> C:
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            meta = option_of(field)
            value = getattr(self, field.name)
            if meta is not None and value is not None:
                _check_value(flag_of(field), meta, value)
        nested = {
            field.name: value.validated()
            for field in dataclasses.fields(self)  # type: ignore[arg-type]
            if isinstance(value := getattr(self, field.name), ConfigBase)
        }
        changed = {k: v for k, v in nested.items() if v is not getattr(self, k)}
        config = dataclasses.replace(self, **changed) if changed else self  # type: ignore[type-var]
        return config.check()

    def check(self: C) -> C:
        """Rules between fields (e.g. modes that exclude each other). Default: none."""
        return self

    def validate(self) -> None:
        """`validated()` for callers that only want the check."""
        self.validated()

    def provenance(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            meta = option_of(field)
            value = getattr(self, field.name)
            if meta is not None and (meta.run_only or (meta.omit_unset and value is None)):
                continue
            if meta is not None and meta.keyed_if_set and value == field.default:
                continue
            out[field.name] = value.provenance() if isinstance(value, ConfigBase) else value
        return out


def _check_value(flag: str, meta: Opt, value: Any) -> None:
    for item in value if isinstance(value, tuple) else (value,):
        # inf and nan pass a one-sided range (inf > 0) and then overflow deep inside a stage.
        if isinstance(item, float) and not math.isfinite(item):
            raise ConfigError(f"{flag} must be a finite number (got {item!r})")
        if meta.choices is not None and item not in meta.choices:
            raise ConfigError(f"{flag} {item!r}: choose one of {', '.join(meta.choices)}")
        if (
            meta.has_range()
            and isinstance(item, (int, float))
            and not isinstance(item, bool)
            and not meta.in_range(item)
        ):
            raise ConfigError(f"{flag} must be {meta.range_text()} (got {item!r})")


# ---------------------------------------------------------------------------------------------
# The options that recur across stages (help text written once).

DEVICE_HELP = "cpu, cuda, cuda:N or auto (cuda when available)."
STRICT_HELP = "Exit 1 if any video fails (its error row is written either way)."
TRUST_REMOTE_CODE_HELP = "Allow model code from the hub (off unless asked)."
MAX_PIXELS_HELP = "Frames larger than this many pixels are downscaled first."

CLIP_MODEL_HELP = (
    "Encoder spec: openclip:ARCH/PRETRAINED_TAG, openclip:hf-hub:ORG/REPO, "
    "openclip:ARCH@/path/model.safetensors, or builtin:world-clip (offline)."
)
LVLM_MODEL_HELP = (
    "LVLM spec: hf:ORG/NAME (Hugging Face hub or cache), hf:/path/to/dir (a saved model with its "
    "processor), openai:URL#MODEL (an OpenAI-compatible server: vLLM, llama.cpp; API key from "
    "ZSAR_OPENAI_API_KEY), or builtin:world-lvlm (offline world model)."
)
TEXT_MODEL_HELP = (
    "Text model: hf:ORG/NAME or hf:/dir (a causal LM, or an LVLM's language model), "
    "openai:URL#MODEL (served), or builtin:world-lvlm."
)


def model(default: str | None, help: str) -> Any:
    """--model/-m: a backend spec (see the *_MODEL_HELP texts)."""
    return opt(default, help, flags=("--model", "-m"))


def device() -> Any:
    return opt("auto", DEVICE_HELP, run_only=True)


def batch_size(default: int, what: str = "Images per model forward.") -> Any:
    return opt(default, what, min=1, run_only=True)


def workers(default: int) -> Any:
    return opt(default, "Videos decoded in parallel.", min=1, run_only=True)


def strict() -> Any:
    return opt(False, STRICT_HELP, run_only=True)


def precision() -> Any:
    """open_clip model weights."""
    return opt("fp32", "Precision of the model weights.", choices=PRECISIONS)


def lvlm_dtype() -> Any:
    """Hugging Face model weights (--dtype of the LVLM and text-model stages)."""
    return opt(
        "auto",
        "Model weights (auto: as saved).",
        choices=LVLM_DTYPES,
    )


def storage_dtype(what: str, flags: tuple[str, ...] = ()) -> Any:
    """How embeddings are stored in an artifact."""
    return opt("float16", f"Storage of {what}.", flags=flags, choices=STORAGE_DTYPES)


def max_pixels() -> Any:
    return opt(512 * 512, MAX_PIXELS_HELP, min=1)


def trust_remote_code() -> Any:
    return opt(False, TRUST_REMOTE_CODE_HELP)


# Served LVLMs (`openai:URL#MODEL`, zsar_cli.backends.openai_lvlm).
SERVED_SCHEMES: tuple[str, ...] = ("openai",)


def served_spec(spec: str | None) -> bool:
    """Whether an LVLM spec names a model behind an HTTP endpoint (no weights loaded here)."""
    return bool(spec) and str(spec).split(":", 1)[0] in SERVED_SCHEMES


def top_logprobs() -> Any:
    return opt(
        20,
        "Served models: next-token log-probs returned per prompt (top-k; mass outside it is "
        "unknown and counted 0). vLLM and OpenAI allow at most 20.",
        min=1,
    )


def request_concurrency() -> Any:
    return opt(8, "Served models: requests in flight at once.", min=1, run_only=True)


def request_timeout() -> Any:
    return opt(120.0, "Served models: seconds one request may take.", gt=0, run_only=True)


def request_retries() -> Any:
    return opt(
        5,
        "Served models: retries of a request that failed with 429, 5xx, a timeout or a broken "
        "connection (exponential backoff, Retry-After honoured).",
        min=0,
        run_only=True,
    )


VIDEO_INPUTS: tuple[str, ...] = ("auto", "native", "images")


def video_input(where: str = "clip prompts") -> Any:
    return opt(
        "auto",
        f"How {where} reach the LVLM: native (the processor's video path, told the frames' real "
        "times), images (one image per frame), auto (native where the family has a video path).",
        choices=VIDEO_INPUTS,
    )


# Multiple-choice option order (zsar_cli.stages.option_order).
OPTION_ORDERS: tuple[str, ...] = ("circular", "shuffled", "clip")


def option_order(canonical: str = "CLIP's rank order: its top-1 is always option A") -> Any:
    return opt(
        "circular",
        "Order of the options in the prompt: circular (one ask per rotation of the options, "
        "probabilities averaged per label: no position bias), shuffled (one seeded random order "
        f"per video), clip ({canonical}).",
        choices=OPTION_ORDERS,
    )


def option_seed() -> Any:
    return opt(0, "With --option-order shuffled: seed of the per-video permutations.", min=0)


def drop_option_order(provenance: dict[str, object], choice: bool = True) -> dict[str, object]:
    """Keep the option order in a cache key only where options are asked, and the seed only
    where it draws them (other runs keep the keys they had before the options existed)."""
    if not choice:
        provenance.pop("option_order", None)
    if not choice or provenance.get("option_order") != "shuffled":
        provenance.pop("option_seed", None)
    return provenance
