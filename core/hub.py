"""Fast answers to "can we reach the Hugging Face Hub?" so offline runs fail in seconds, not minutes.

huggingface_hub retries a dead connection for ~50 s before giving up; a plain TCP connect with
a short timeout tells the same story at once.
"""

from __future__ import annotations

import os
import socket
import threading
from functools import lru_cache
from urllib.parse import urlparse

PROBE_SECONDS = 3.0


def hub_offline_reason() -> str | None:
    """Why the Hub cannot be used now (offline switch or no connection), or None when it answers."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}:
            return f"{var} is set"
    return _probe_endpoint(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")


@lru_cache(maxsize=4)
def _probe_endpoint(endpoint: str) -> str | None:
    url = urlparse(endpoint)
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    outcome: list[str] = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=PROBE_SECONDS).close()
            outcome.append("")
        except OSError as exc:
            outcome.append(exc.strerror or type(exc).__name__)

    # getaddrinfo has no timeout of its own, so the probe runs in a thread we stop waiting for.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(PROBE_SECONDS + 0.5)
    if not outcome:
        return f"no answer from {host} within {PROBE_SECONDS:.0f} s"
    return f"cannot reach {host} ({outcome[0]})" if outcome[0] else None


def hub_reachable() -> bool:
    return hub_offline_reason() is None
