"""Atomic writes of JSON and other text files (ActivityNet results JSON, description caches,
the HTML report); `-` writes to stdout. Parquet artifacts have their own machinery in
`zsar_cli.artifacts`.

A temp file next to the target, then a rename: a reader (or a rerun after a crash) sees the old
file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from zsar_cli.artifacts import STDIO


def write_text(text: str, path: str | os.PathLike[str]) -> None:
    """Write `text` atomically (temp file + rename), or to stdout for `-`."""
    if str(path) == STDIO:
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    tmp.write_text(text)
    os.replace(tmp, target)


def write_json(payload: Any, path: str | os.PathLike[str]) -> None:
    """Write JSON atomically (temp file + rename), or to stdout for `-`."""
    write_text(json.dumps(payload, indent=1, allow_nan=True) + "\n", path)
