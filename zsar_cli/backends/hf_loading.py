"""Loading transformers models for the `hf:` backends (`hf_lvlm`, `hf_text`).

Input: the part of an `hf:` spec after the scheme (`ORG/NAME` on the Hub, or a local folder),
device and dtype names. Output: a processor and model (AutoProcessor +
AutoModelForImageTextToText), or a one-line `ModelError`/`ConfigError` that names what is wrong
and what to do, checked before transformers prints pages of its own.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from zsar_cli.backends.contract import check_lvlm_folder
from zsar_cli.errors import ConfigError, ModelError
from zsar_cli.quiet import quiet_libraries

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
HUB_HINT = (
    "; without network pass a saved model folder (hf:/path/to/dir) or set HF_HOME to a "
    "populated Hugging Face cache"
)
PROCESSOR_FILES: tuple[str, ...] = ("processor_config.json", "preprocessor_config.json")


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"--device {device!r}: {exc}") from None


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in DTYPES:
        raise ConfigError(f"--dtype {dtype!r}: expected auto or one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def is_local(rest: str) -> bool:
    """A path-like spec or an existing folder (never a Hub name)."""
    return rest.startswith(("/", ".", "~")) or Path(rest).expanduser().exists()


def check_source(rest: str) -> tuple[str, bool]:
    """(name or path for from_pretrained, whether it is a local folder), with clear errors."""
    if not rest:
        raise ModelError("hf: spec needs a model name (hf:ORG/NAME) or a folder (hf:/path/to/dir)")
    path = Path(rest).expanduser()
    if is_local(rest):
        if not path.is_dir():
            raise ModelError(f"hf:{rest}: no such model folder")
        if not (path / "config.json").is_file():
            raise ModelError(f"hf:{rest}: not a transformers model folder (no config.json)")
        if not any((path / n).is_file() for n in PROCESSOR_FILES):
            raise ModelError(
                f"hf:{rest}: model folder has no processor (processor_config.json or "
                "preprocessor_config.json); save one with processor.save_pretrained(dir)"
            )
        return str(path), True
    if rest.count("/") != 1:
        raise ModelError(f"hf:{rest}: expected hf:ORG/NAME or hf:/path/to/dir")
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false")
    if offline:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(rest, "config.json")
        if not isinstance(cached, str):
            raise ModelError(
                f"hf:{rest}: not in the Hugging Face cache and HF_HUB_OFFLINE is set; download it "
                "first (huggingface-cli download) or pass hf:/path/to/dir"
            )
    return rest, False


def load_processor_and_model(
    rest: str,
    source: str,
    kwargs: dict[str, Any],
    torch_dtype: Any,
    attn_implementation: str | None,
) -> tuple[Any, Any]:
    """AutoProcessor + AutoModelForImageTextToText, refusing processors that cannot make
    image-text prompts (no image processor, no tokenizer, no chat template)."""

    # transformers draws a "Loading weights" bar on every load, terminal or not (issue 16).
    with quiet_libraries():
        return _load_processor_and_model(rest, source, kwargs, torch_dtype, attn_implementation)


def _load_processor_and_model(
    rest: str,
    source: str,
    kwargs: dict[str, Any],
    torch_dtype: Any,
    attn_implementation: str | None,
) -> tuple[Any, Any]:
    import transformers

    try:
        processor = transformers.AutoProcessor.from_pretrained(source, **kwargs)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        hint = "" if Path(source).exists() else HUB_HINT
        raise ModelError(
            f"hf:{rest}: cannot load the processor ({first_line(exc)}){hint}"
        ) from None
    if not hasattr(processor, "tokenizer") or not hasattr(processor, "image_processor"):
        raise ModelError(
            f"hf:{rest}: {type(processor).__name__} is not an image-text processor "
            "(the folder lacks an image processor or tokenizer)"
        )
    if not getattr(processor, "chat_template", None):
        raise ModelError(f"hf:{rest}: the processor has no chat template")
    model_kwargs = dict(kwargs, dtype=torch_dtype)
    if attn_implementation:
        model_kwargs["attn_implementation"] = attn_implementation
    try:
        model = transformers.AutoModelForImageTextToText.from_pretrained(source, **model_kwargs)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"hf:{rest}: cannot load the model ({first_line(exc)})") from None
    return processor, model


BUILTIN_MODELS: dict[str, str] = {"world-lvlm": "world-lvlm"}
REBUILD_HINT = "scripts/build_world_lvlm.sh"


def builtin_spec(name: str) -> str:
    """`world-lvlm` → `hf:<package>/models/world-lvlm` (loaded like any local model folder)."""
    from zsar_cli.backends import MODELS_DIR

    if name not in BUILTIN_MODELS:
        known = ", ".join("builtin:" + n for n in BUILTIN_MODELS)
        raise ModelError(f"unknown built-in LVLM {name!r}; known: {known}")
    folder = MODELS_DIR / BUILTIN_MODELS[name]
    if not (folder / "config.json").is_file():
        raise ModelError(f"builtin:{name}: {folder} is missing; rebuild it with {REBUILD_HINT}")
    check_lvlm_folder(folder, f"builtin:{name}", required=True)
    return f"hf:{folder}"
