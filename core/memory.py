"""Out-of-memory handling shared by every job kind: catch it, free the cache, halve the batch, go on.

Training halves its micro-batch (and doubles accumulation, so the optimizer sees the same batch),
evaluation halves its generation batch; both give up with one clear OutOfMemory at size 1.
Imports torch: used only inside running jobs.
"""

from __future__ import annotations

import torch

from core.errors import OutOfMemory

OOM_ERRORS = (getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError),)


def release_cached_memory() -> None:
    """Hand the allocator's cached blocks back so the smaller retry starts from a clean slate."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class HalvingSize:
    """A batch size that halves on each out-of-memory error; `retries` counts the halvings.

    `at_one` is the message of the OutOfMemory raised when even size 1 did not fit.
    """

    def __init__(self, size: int, at_one: str) -> None:
        self.size = max(1, int(size))
        self.at_one = at_one
        self.retries = 0

    def halve(self, failed_at: int | None = None) -> int:
        """The next size to try after `failed_at` (default: the current size) ran out of memory."""
        release_cached_memory()
        failed = self.size if failed_at is None else failed_at
        if failed <= 1:
            raise OutOfMemory(self.at_one) from None
        self.size = max(1, failed // 2)
        self.retries += 1
        return self.size


def peak_memory(device: torch.device) -> dict:
    """This process's peak memory so far: resident set (RSS, MiB) and, on a GPU, what torch allocated (MiB)."""
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    out = {"peak_rss_mib": round(rss / (2**20 if sys.platform == "darwin" else 2**10), 1)}
    if device.type == "cuda":
        out["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out
