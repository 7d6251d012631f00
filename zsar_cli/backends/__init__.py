"""Model backends behind small Protocols, and the registry that maps spec strings to them.

Specs are `scheme:name[/tag][@path]`:
- image-text encoders (CLIP, `base.Encoder`): `openclip:ViT-B-32/laion2b_s34b_b79k`,
  `openclip:hf-hub:ORG/REPO`, `openclip:ARCH@/path/to/checkpoint.safetensors`,
  `builtin:world-clip`;
- vision-language models (`lvlm_base.LVLM`): `hf:HuggingFaceTB/SmolVLM2-256M-Video-Instruct`,
  `hf:/local/dir`, `builtin:world-lvlm`, and models behind an OpenAI-compatible server
  (`openai:http://HOST:8000/v1#Qwen/Qwen2.5-VL-7B-Instruct`, `openai_lvlm`);
- text generators (`text_base.RecordGenerator`, for `describe`): `hf:...`, `builtin:world-lvlm`,
  `openai:URL#MODEL` (served).

This module imports nothing heavy: each backend module imports torch/open_clip/transformers
itself, and is imported only when a spec of its scheme is loaded. An unknown spec fails with an
error listing what is known; there is never a silent fallback to another backend. Other schemes
are added with `register_scheme` (the tests' deterministic `fake:` backend is one).
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from zsar_cli.errors import ConfigError, ModelError

if TYPE_CHECKING:  # the Protocol modules import numpy; this one stays free of it
    from zsar_cli.backends.base import Encoder
    from zsar_cli.backends.lvlm_base import LVLM
    from zsar_cli.backends.text_base import RecordGenerator

Kind = Literal["encoder", "lvlm", "text"]

# scheme → "module:function" for each backend family. The function takes (spec_rest, **options).
ENCODER_SCHEMES: dict[str, str] = {
    "openclip": "zsar_cli.backends.openclip:load_openclip",
}
LVLM_SCHEMES: dict[str, str] = {
    "hf": "zsar_cli.backends.hf_lvlm:load_hf_lvlm",
    "openai": "zsar_cli.backends.openai_lvlm:load_openai_lvlm",
}
TEXT_SCHEMES: dict[str, str] = {
    "hf": "zsar_cli.backends.hf_text:load_hf_text",
    "openai": "zsar_cli.backends.openai_text:load_openai_text",
}
SCHEMES: dict[str, dict[str, str]] = {
    "encoder": ENCODER_SCHEMES,
    "lvlm": LVLM_SCHEMES,
    "text": TEXT_SCHEMES,
}
# The package's own schemes, listed first (then `builtin`, then registered ones) in errors.
PACKAGE_SCHEMES: dict[str, tuple[str, ...]] = {kind: tuple(d) for kind, d in SCHEMES.items()}
PROTOCOLS: dict[str, str] = {
    "encoder": "zsar_cli.backends.base:Encoder",
    "lvlm": "zsar_cli.backends.lvlm_base:LVLM",
    "text": "zsar_cli.backends.text_base:RecordGenerator",
}
NAMES: dict[str, str] = {"encoder": "encoder", "lvlm": "LVLM", "text": "text-model"}
# Built-in models shipped inside the package (zsar_cli/models/), resolved to a real spec of the
# ordinary code path, so they exercise exactly what a user's checkpoint would.
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


def is_served(spec: str | None) -> bool:
    """Whether an LVLM spec names a served model (weights behind an HTTP endpoint)."""
    from zsar_cli.options import served_spec

    return served_spec(spec)


def register_scheme(kind: Kind, scheme: str, target: str) -> None:
    """Make `scheme:REST` specs of `kind` load with `target` ("package.module:function"), which
    is called as `function(REST, **options)` and must return an object implementing the kind's
    Protocol. The module is imported on the first load, not here."""
    if kind not in SCHEMES:
        raise ConfigError(f"unknown backend kind {kind!r}; known: {', '.join(SCHEMES)}")
    module, _, function = target.partition(":")
    if not scheme.isidentifier() or scheme == "builtin" or not module or not function:
        raise ConfigError(
            f"register_scheme({kind!r}, {scheme!r}, {target!r}): expected a scheme other than "
            "'builtin' and a target 'package.module:function'"
        )
    known = SCHEMES[kind].get(scheme)
    if known is not None and known != target:
        raise ConfigError(f"{NAMES[kind]} scheme {scheme!r} is already registered to {known}")
    SCHEMES[kind][scheme] = target


def register_encoder_scheme(scheme: str, target: str) -> None:
    register_scheme("encoder", scheme, target)


def register_lvlm_scheme(scheme: str, target: str) -> None:
    register_scheme("lvlm", scheme, target)


def builtin_encoder_spec(name: str) -> str:
    """`world-clip` → the `openclip:ARCH@PATH` spec of the shipped checkpoint."""
    from zsar_cli.backends.openclip import builtin_spec  # registers builtins lazily

    return builtin_spec(name)


def builtin_lvlm_spec(name: str) -> str:
    """`world-lvlm` → the `hf:/dir` spec of the shipped model folder."""
    from zsar_cli.backends.hf_lvlm import builtin_spec

    return builtin_spec(name)


# ---------------------------------------------------------------------------------------------
# Built-in models in provenance
#
# An artifact made with a built-in model records `builtin:NAME` and the SHA-256 of the model's
# files (`model_sha256`), never the folder the package happens to be installed in: the same
# model in another checkout or site-packages is the same model, and a rebuilt one is not.


_DIGESTS: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}


def builtin_digest(name: str) -> str:
    """`sha256:HEX` of a built-in model's files (relative names and contents, in name order)."""
    folder = MODELS_DIR / name
    if not folder.is_dir():
        raise ModelError(f"builtin:{name}: {folder} is missing")
    # Hidden files (.DS_Store, editor swap files) are not part of the model.
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    stamp = tuple((p.relative_to(folder).as_posix(), *_size_and_mtime(p)) for p in files)
    key = (str(folder), stamp)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        for path in files:
            digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
            digest.update(b"\0")
        _DIGESTS[key] = f"sha256:{digest.hexdigest()}"
    return _DIGESTS[key]


def _size_and_mtime(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def canonical_spec(spec: str) -> str:
    """The spec as provenance records and compares it: a spec that names a built-in model's
    files by path (`openclip:ARCH@<models>/world-clip/...`, `hf:<models>/world-lvlm`) is
    `builtin:NAME`; any other spec is returned as given."""
    scheme, _, rest = spec.partition(":")
    if scheme == "builtin" or not rest:
        return spec
    if scheme == "openclip":
        path = rest.split("@", 1)[1] if "@" in rest else rest.removeprefix("local-dir:")
    elif scheme == "hf":
        path = rest
    else:
        return spec
    try:
        real = Path(os.path.realpath(os.path.expanduser(path)))
        models = Path(os.path.realpath(MODELS_DIR))
        inside = real.relative_to(models)
    except (ValueError, OSError):
        return spec
    if not inside.parts or not (models / inside.parts[0]).is_dir():
        return spec
    return f"builtin:{inside.parts[0]}"


def model_record(spec: str) -> dict[str, str]:
    """What an artifact records about the model of `spec`: `model_spec`, `model_revision` (the
    Hub commit or the content hash of the weights, `zsar_cli.backends.revision`), and for a
    built-in model `builtin:NAME` with the `model_sha256` of its files."""
    from zsar_cli.backends.revision import model_revision

    canonical = canonical_spec(spec)
    if not canonical.startswith("builtin:"):
        return {"model_spec": spec, "model_revision": model_revision(spec)}
    digest = builtin_digest(canonical.partition(":")[2])
    return {"model_spec": canonical, "model_sha256": digest, "model_revision": digest}


def revision_key(spec: str) -> list[str]:
    """The model's resolved revision as an upstream key of the artifacts it answers into, so a
    model rebuilt or updated under the same spec never passes for "up to date" ([] where no
    revision can be named: served models, test backends)."""
    revision = model_record(spec).get("model_revision", "")
    return [f"model:{revision}"] if revision else []


def check_recorded_model(spec: str, recorded_sha256: str | None, source: str) -> str:
    """The spec an artifact recorded, to load again: a built-in one must still be the model
    that made the artifact (same files), else one line saying to remake it."""
    canonical = canonical_spec(spec)
    if not canonical.startswith("builtin:") or not recorded_sha256:
        return canonical
    installed = builtin_digest(canonical.partition(":")[2])
    if installed != recorded_sha256:
        raise ModelError(
            f"{source}: made with {canonical} {recorded_sha256[:19]}, but the installed "
            f"{canonical} is {installed[:19]} (rebuilt since); remake {source} with this zsar"
        )
    return canonical


def _as_builtin(loaded: Any, name: str) -> Any:
    """The loaded backend object under its built-in name (a shallow copy: the backend may cache
    the object under the path spec it was loaded from)."""
    named = copy.copy(loaded)
    named.spec = f"builtin:{name}"
    return named


def _known(kind: Kind) -> str:
    package = PACKAGE_SCHEMES[kind]
    return ", ".join([*package, "builtin", *(s for s in SCHEMES[kind] if s not in package)])


def _split(spec: str, kind: Kind) -> tuple[str, str]:
    what = NAMES[kind]
    if ":" not in spec:
        raise ModelError(
            f"model spec {spec!r} has no scheme; known {what} schemes: {_known(kind)} "
            f"(e.g. {PACKAGE_SCHEMES[kind][0]}:NAME)"
        )
    scheme, rest = spec.split(":", 1)
    if scheme != "builtin" and scheme not in SCHEMES[kind]:
        raise ModelError(f"unknown {what} scheme {scheme!r} in {spec!r}; known: {_known(kind)}")
    return scheme, rest


def _resolve(target: str) -> Any:
    module_name, name = target.split(":")
    return getattr(importlib.import_module(module_name), name)


def _load(kind: Kind, spec: str, options: dict[str, Any]) -> Any:
    from zsar_cli.backends.lvlm_base import missing_members

    scheme, rest = _split(spec, kind)
    builtin = rest if scheme == "builtin" else None
    if builtin is not None:
        spec = builtin_encoder_spec(rest) if kind == "encoder" else builtin_lvlm_spec(rest)
        scheme, rest = _split(spec, kind)
    loaded = _resolve(SCHEMES[kind][scheme])(rest, **options)
    # A registered backend that does not keep the Protocol would fail deep inside a stage.
    protocol = _resolve(PROTOCOLS[kind])
    if not isinstance(loaded, protocol):
        missing = ", ".join(missing_members(loaded, protocol))
        raise ModelError(
            f"{spec}: the {scheme}: backend returned a {type(loaded).__name__}, which is not an "
            f"{NAMES[kind]} (lacks {missing})"
        )
    return loaded if builtin is None else _as_builtin(loaded, builtin)


def load_encoder(spec: str, **options: Any) -> Encoder:
    """Load an image-text encoder (see `zsar_cli.backends.base.Encoder`)."""
    encoder: Encoder = _load("encoder", spec, options)
    return encoder


def load_lvlm(spec: str, **options: Any) -> LVLM:
    """Load a vision-language model (see `zsar_cli.backends.lvlm_base.LVLM`)."""
    lvlm: LVLM = _load("lvlm", spec, options)
    return lvlm


def load_text_generator(spec: str, **options: Any) -> RecordGenerator:
    """Load a text generator for `describe` (see `zsar_cli.backends.text_base.RecordGenerator`)."""
    generator: RecordGenerator = _load("text", spec, options)
    return generator
