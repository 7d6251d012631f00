"""Model backends behind small Protocols, and the registry that maps spec strings to them.

Specs are `scheme:name[/tag][@path]`:
- image-text encoders (CLIP): `openclip:ViT-B-32/laion2b_s34b_b79k`, `openclip:hf-hub:ORG/REPO`,
  `openclip:ARCH@/path/to/checkpoint.safetensors`, `builtin:world-clip`;
- vision-language models (LVLM): `hf:HuggingFaceTB/SmolVLM2-256M-Video-Instruct`, `hf:/local/dir`,
  `builtin:world-lvlm`.

This module imports nothing heavy: each backend module imports torch/open_clip/transformers
itself, and is imported only when a spec of its scheme is loaded. An unknown spec fails with an
error listing what is known; there is never a silent fallback to another backend.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from zsar_cli.errors import ModelError

# scheme → "module:function" for each backend family. The function takes (spec_rest, **options).
ENCODER_SCHEMES: dict[str, str] = {
    "openclip": "zsar_cli.backends.openclip:load_openclip",
}
LVLM_SCHEMES: dict[str, str] = {
    "hf": "zsar_cli.backends.hf_lvlm:load_hf_lvlm",
}
# Built-in models shipped inside the package (zsar_cli/models/), resolved to a real spec of the
# ordinary code path, so they exercise exactly what a user's checkpoint would.
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


def builtin_encoder_spec(name: str) -> str:
    """`world-clip` → the `openclip:ARCH@PATH` spec of the shipped checkpoint."""
    from zsar_cli.backends.openclip import builtin_spec  # registers builtins lazily

    return builtin_spec(name)


def builtin_lvlm_spec(name: str) -> str:
    """`world-lvlm` → the `hf:/dir` spec of the shipped model folder."""
    from zsar_cli.backends.hf_lvlm import builtin_spec

    return builtin_spec(name)


def _split(spec: str, known: dict[str, str], what: str) -> tuple[str, str]:
    if ":" not in spec:
        raise ModelError(
            f"model spec {spec!r} has no scheme; known {what} schemes: "
            f"{', '.join([*known, 'builtin'])} (e.g. {next(iter(known))}:NAME)"
        )
    scheme, rest = spec.split(":", 1)
    if scheme != "builtin" and scheme not in known:
        raise ModelError(
            f"unknown {what} scheme {scheme!r} in {spec!r}; known: {', '.join([*known, 'builtin'])}"
        )
    return scheme, rest


def _call(target: str, rest: str, options: dict[str, Any]) -> Any:
    module_name, func_name = target.split(":")
    module = importlib.import_module(module_name)
    return getattr(module, func_name)(rest, **options)


def load_encoder(spec: str, **options: Any) -> Any:
    """Load an image-text encoder (see `zsar_cli.backends.base.Encoder`)."""
    scheme, rest = _split(spec, ENCODER_SCHEMES, "encoder")
    if scheme == "builtin":
        spec = builtin_encoder_spec(rest)
        scheme, rest = _split(spec, ENCODER_SCHEMES, "encoder")
    return _call(ENCODER_SCHEMES[scheme], rest, options)


def load_lvlm(spec: str, **options: Any) -> Any:
    """Load a vision-language model (see `zsar_cli.backends.base.LVLM`)."""
    scheme, rest = _split(spec, LVLM_SCHEMES, "LVLM")
    if scheme == "builtin":
        spec = builtin_lvlm_spec(rest)
        scheme, rest = _split(spec, LVLM_SCHEMES, "LVLM")
    return _call(LVLM_SCHEMES[scheme], rest, options)
