"""Fast answers to "can we reach the Hugging Face Hub?" so offline runs fail in seconds, not minutes.

huggingface_hub retries a dead connection for ~50 s before giving up; a plain TCP connect with
a short timeout tells the same story at once.
"""

from __future__ import annotations

import os
import socket
import threading
from functools import lru_cache
from pathlib import Path
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


def fetch(repo: str, *, repo_type: str = "model", filename: str | None = None,
          allow_patterns: list[str] | None = None, what: str, offline_hint: str) -> Path:
    """fetch_with_source() without saying where it came from."""
    return fetch_with_source(repo, repo_type=repo_type, filename=filename, allow_patterns=allow_patterns, what=what,
                             offline_hint=offline_hint)[0]


def fetch_with_source(repo: str, *, repo_type: str = "model", filename: str | None = None,
                      allow_patterns: list[str] | None = None, what: str, offline_hint: str) -> tuple[Path, str]:
    """(a Hub repo, or one file of it, as a local path; where it came from): the local cache first, then the Hub.

    The one "cache, then hub" lookup every kind uses: models, tokenizers and dataset files. Offline
    (HF_HUB_OFFLINE or no answer from the Hub) it fails within seconds with one UsageError that
    says `what` was wanted and `offline_hint` (what to do instead), instead of hub retries.
    """
    from huggingface_hub import hf_hub_download, snapshot_download

    from core.errors import UsageError

    def get(local_only: bool) -> str:
        if filename is not None:
            return hf_hub_download(repo_id=repo, repo_type=repo_type, filename=filename, local_files_only=local_only)
        return snapshot_download(repo, repo_type=repo_type, allow_patterns=allow_patterns, local_files_only=local_only)

    try:
        return Path(get(True)), "Hugging Face cache"
    except Exception:
        pass  # not (fully) in the cache: try the Hub
    reason = hub_offline_reason()
    if reason:
        raise UsageError(f"{what} is not in the local Hugging Face cache and the Hub is unreachable ({reason}); {offline_hint}")
    try:
        return Path(get(False)), "Hugging Face Hub"
    except Exception as exc:
        text = str(exc).strip()
        first = text.splitlines()[0][:200] if text else type(exc).__name__
        raise UsageError(f"could not download {what} from the Hub ({first}); check the name or {offline_hint}") from None
