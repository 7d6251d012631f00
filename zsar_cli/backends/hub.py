"""Hugging Face hub access shared by the backends: fail fast and quietly without network.

Without this, a missing model costs ~45 s to minutes of download retries per file, each logged,
before the one error that matters; with it, cached models load at once and missing ones fail at
once with the backend's own one-line message.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face endpoint answers a TCP connect (no proxy configured)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # a proxy decides; let huggingface_hub try
    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname or "", url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def offline_if_unreachable() -> Iterator[None]:
    """Switch huggingface_hub (and transformers, which reads the same flag) to offline mode for
    one load when the hub cannot be reached, and silence its retry logging meanwhile."""
    from huggingface_hub import constants

    previous = constants.HF_HUB_OFFLINE
    env_previous = os.environ.get("HF_HUB_OFFLINE")
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.CRITICAL)
    if not previous and not hub_reachable():
        constants.HF_HUB_OFFLINE = True
        os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous
        if env_previous is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = env_previous
        hub_log.setLevel(level)
