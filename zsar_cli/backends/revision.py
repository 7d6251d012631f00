"""The resolved revision of a model spec, recorded in every artifact a model makes.

Input: a model spec (`hf:ORG/NAME`, `hf:/dir`, `openclip:ARCH/TAG`, `openclip:ARCH@/file`,
`builtin:NAME`). Output: `model_revision`, a string that names the exact weights: the Hub commit
of the cached snapshot (`hub:<40 hex>`), or the SHA-256 of a local folder's or file's contents
(`sha256:<hex>`). Two runs with "the same" spec but other weights then differ in their
provenance, and in the cache keys of the stages that include it.

Nothing is downloaded: a Hub model is resolved from the local cache only. Hashing a folder of
gigabytes takes seconds, so each file's digest is remembered under its path, size and
modification time (`$ZSAR_CACHE_DIR/file-digests.json`); a rewritten file is hashed again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

CHUNK = 8 * 2**20


def _digest_cache() -> Path:
    root = os.environ.get("ZSAR_CACHE_DIR")
    base = Path(root) if root else Path.home() / ".cache" / "zsar"
    return base / "file-digests.json"


def _load_cache(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def file_digests(files: list[Path]) -> list[str]:
    """SHA-256 hex of each file's contents, hashing only files not seen with this size and
    modification time before."""
    cache_path = _digest_cache()
    cache = _load_cache(cache_path)
    out, changed = [], False
    for file in files:
        st = file.stat()
        key = f"{file.resolve()}\0{st.st_size}\0{st.st_mtime_ns}"
        if key not in cache:
            digest = hashlib.sha256()
            with file.open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
            cache[key] = digest.hexdigest()
            changed = True
        out.append(cache[key])
    if changed:
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(cache), encoding="utf-8")
            tmp.replace(cache_path)
        except OSError:  # a read-only home: the digests are recomputed next time
            pass
    return out


def folder_content_digest(folder: Path) -> str:
    """`sha256:HEX` over a folder's files (relative names and content digests, name order);
    hidden files (.DS_Store, editor swap files) are not part of a model."""
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    digest = hashlib.sha256()
    for path, content in zip(files, file_digests(files), strict=True):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{content}\n".encode())
    return f"sha256:{digest.hexdigest()}"


def hub_commit(repo: str) -> str:
    """`hub:<commit>` of the cached snapshot of a Hub repository, or "" when not cached."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return ""
    for name in ("config.json", "open_clip_config.json", "open_clip_model.safetensors"):
        cached = try_to_load_from_cache(repo, name)
        if isinstance(cached, str):
            parts = Path(cached).parts
            if "snapshots" in parts[:-1]:
                return "hub:" + parts[parts.index("snapshots") + 1]
    return ""


def _openclip_revision(rest: str) -> str:
    if rest.startswith("local-dir:"):
        folder = Path(rest.partition(":")[2]).expanduser()
        return folder_content_digest(folder) if folder.is_dir() else ""
    if rest.startswith("hf-hub:"):
        return hub_commit("/".join(rest.partition(":")[2].strip("/").split("/")[:2]))
    if "@" in rest:
        path = Path(rest.split("@", 1)[1]).expanduser()
        if path.is_file():
            return f"sha256:{file_digests([path])[0]}"
        return folder_content_digest(path) if path.is_dir() else ""
    arch, _, tag = rest.partition("/")
    try:
        import open_clip

        hub = (open_clip.get_pretrained_cfg(arch, tag) or {}).get("hf_hub", "")
    except Exception:  # an unknown tag is reported by the loader, not here
        hub = ""
    commit = hub_commit("/".join(hub.strip("/").split("/")[:2])) if hub else ""
    return commit or (f"pretrained:{tag}" if tag else "")


_RESOLVED: dict[str, str] = {}


def model_revision(spec: str) -> str:
    """The resolved revision of `spec` ("" where none can be named, e.g. test backends);
    resolved once per process."""
    if spec not in _RESOLVED:
        _RESOLVED[spec] = _resolve(spec)
    return _RESOLVED[spec]


def _resolve(spec: str) -> str:
    scheme, _, rest = spec.partition(":")
    if scheme == "hf":
        path = Path(rest).expanduser()
        if rest.startswith(("/", ".", "~")) or path.is_dir():
            return folder_content_digest(path) if path.is_dir() else ""
        return hub_commit(rest)
    if scheme == "openclip":
        return _openclip_revision(rest)
    return ""
