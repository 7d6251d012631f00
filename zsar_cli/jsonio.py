"""JSON outputs (ActivityNet results JSON, description caches) through the one writer policy of
`zsar_cli.outputs`: atomic, locked, never over a run's own input, other content refused unless
`force`; `-` writes to stdout.
"""

from __future__ import annotations

import json
import os
from typing import Any

from zsar_cli.outputs import write_text_atomic


def write_json(payload: Any, path: str | os.PathLike[str], force: bool = False) -> None:
    """Write JSON whole (temp file + rename), or to stdout for `-`."""
    write_text_atomic(path, json.dumps(payload, indent=1, allow_nan=True) + "\n", force=force)
