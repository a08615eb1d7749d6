"""The one exception type that the CLI turns into a single line and exit code 2."""

from __future__ import annotations

import errno

# No space left / disk quota exceeded: the one OSError a user fixes themselves, so one line, not a traceback.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class UsageError(Exception):
    """Bad input from the user: the message says what is wrong and how to fix it."""


class OutOfMemory(Exception):
    """Raised when a step runs out of accelerator memory even at the smallest batch."""
