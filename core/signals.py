"""Clean stops for long jobs: the first SIGINT/SIGTERM/SIGHUP asks the loop to stop at the next
step or batch boundary; a second one interrupts at once.

SIGHUP is what a job started from a plain SSH shell gets when the connection drops; treating it
like Ctrl-C means the job still saves its work. (Jobs started from the app run in their own
session and never see it.)

A second signal within ECHO_SECONDS of the first counts as the same request: with several
processes one Ctrl-C reaches a rank from the terminal and again from llmlab's launcher, which
passes it on (core/launch.py).
"""

from __future__ import annotations

import signal
import threading
import time
from typing import Callable

ECHO_SECONDS = 1.0
STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)


class StopRequest:
    """Callable flag: `stop()` is True once a stop signal arrived; `stop.signal` says which."""

    def __init__(self, on_signal: Callable[[int], None] | None = None) -> None:
        self.signal: int | None = None
        self._on_signal = on_signal
        self._previous: dict[int, object] = {}
        self._first_at = 0.0

    def __call__(self) -> bool:
        return self.signal is not None

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def _handle(self, signum, frame) -> None:
        if self.signal is not None:  # a second signal means "now", unless it is the first one passed on
            if time.monotonic() - self._first_at < ECHO_SECONDS:
                return
            raise KeyboardInterrupt
        self.signal, self._first_at = signum, time.monotonic()
        if self._on_signal:
            self._on_signal(signum)

    def install(self) -> "StopRequest":
        # Python only allows signal handlers in the main thread (the app's tests call engines from others).
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            if handler is not None:
                signal.signal(sig, handler)
        self._previous.clear()

    def __enter__(self) -> "StopRequest":
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.restore()
