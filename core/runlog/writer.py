"""The one writer of events.jsonl: typed events (core/runlog/events.py), stamped and flushed one line at a time."""

from __future__ import annotations

import time
from pathlib import Path

from core.runlog.events import Event
from core.runs import JsonlWriter


class EventLog(JsonlWriter):
    """`events.jsonl`: each event stamped with wall time and monotonic seconds since `t0`, flushed as written.

    `t0` is a time.monotonic() reading (default: now), so `elapsed` never jumps with the wall clock.
    The app follows the file while it grows, so a line is either whole or not there yet.
    """

    def __init__(self, path: Path, t0: float | None = None):
        super().__init__(path)
        self.t0 = time.monotonic() if t0 is None else t0

    def emit(self, event: Event) -> None:
        event.time = round(time.time(), 3)
        event.elapsed = round(time.monotonic() - self.t0, 3)
        self.write(event.record())
