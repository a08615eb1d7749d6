"""The app as `llmlab serve` runs it for one browser tab: `llmlab`, bound to the server's life.

The server ends a tab's app when the tab closes or the server stops; this covers the server
dying without a chance to (SIGKILL, the out-of-memory killer). Linux then kills the app with its
parent (PR_SET_PDEATHSIG), so no app is left running unseen. The jobs it started are not
affected: each runs in its own session.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
SERVER_PID_ENV = "LLMLAB_SERVE_PID"


def die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        # SIGKILL, not SIGTERM: Textual's web driver turns SIGTERM into a graceful exit, which
        # writes to the dead server's pipe; a tab's app holds nothing a kill could damage.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the server died before the line above took effect
        sys.exit(0)


def main() -> None:
    parent = os.environ.get(SERVER_PID_ENV)
    if parent and parent.isdigit():
        die_with_parent(int(parent))
    from tui.app import run_app

    run_app()


if __name__ == "__main__":
    main()
