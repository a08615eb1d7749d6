"""What every job's events add up to in the app, whatever its kind: status, phase, timing, log lines, its end.

The live tab (events arriving from a follower) and a run screen (a finished run read from disk)
fold the same typed events (core.runlog) through the same classes, so they always agree. A kind's
module (tui/kinds/<kind>.py) extends `JobProgress` with its own figures and brings one view
widget that shows them in both places.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from core.distributed import rank_errors
from core.runlog import End, Event, Log, Phase, Start, parse

# A `phase` event reports a phase that has just finished; the job is then in the next one.
NEXT_PHASE = {"data": "tokenize", "tokenize": "model_init", "model_init": "train", "train": "save", "save": "report",
              "report": "finishing"}
# Exit codes of a clean stop: 128 + SIGINT, SIGTERM or SIGHUP (see core/signals.py).
STOP_EXIT_CODES = (130, 143, 129)


def final_status(summary: dict | None, returncode: int | None) -> str:
    """A finished job's status: summary.json's word when there is one, else read from the exit code."""
    if summary and summary.get("status"):
        return str(summary["status"])
    return "stopped" if returncode in STOP_EXIT_CODES else "failed"


def eta(first: tuple | None, now: tuple, total: int | None) -> float | None:
    """Seconds until `total`, at the rate seen between two (elapsed, count) readings."""
    if not total or first is None:
        return None
    (t0, n0), (t1, n1) = first, now
    if n1 <= n0 or t1 <= t0:
        return None
    return (t1 - t0) / (n1 - n0) * max(0, total - n1)


@dataclass
class JobProgress:
    """State every job has: status, timing, log lines, and how it ended."""

    run_dir: Path | None = None
    status: str = "idle"  # idle | starting | running | stopping | completed | failed | stopped
    phase: str = ""
    pid: int | None = None
    world_size: int = 1  # processes of a distributed job (rank 0's events are the job's)
    pids: list = field(default_factory=list)  # each rank's pid, rank 0 first
    rank_errors: dict = field(default_factory=dict)  # rank -> the first line of its ranks/rank-N.error
    start_time: float | None = None  # unix time of the start event
    elapsed: float = 0.0  # seconds since start, from the newest event
    logs: deque = field(default_factory=lambda: deque(maxlen=200))
    new_logs: list = field(default_factory=list)
    summary: dict | None = None
    error: str | None = None
    log_tail: list = field(default_factory=list)
    returncode: int | None = None

    @property
    def finished(self) -> bool:
        return self.status in ("completed", "failed", "stopped")

    @property
    def active(self) -> bool:
        return self.status in ("starting", "running", "stopping")

    @classmethod
    def load(cls, run) -> "JobProgress":
        """A run read from disk (a core.runlog RunFolder), folded as the live view would have seen it."""
        progress = cls(run_dir=run.path)
        for event in run.events():
            progress.apply(event)
        progress.load_files(run)
        progress.rank_errors = rank_errors(run.path)
        return progress

    def load_files(self, run) -> None:
        """Read what the kind writes besides events (results.jsonl for the kinds that answer questions)."""

    def apply(self, event: Event | dict) -> None:
        """Fold one event (a typed event, or its JSON object) into the state."""
        self.apply_event(parse(event) if isinstance(event, dict) else event)

    def apply_event(self, event: Event) -> None:
        if isinstance(event.elapsed, (int, float)):
            self.elapsed = float(event.elapsed)
        if isinstance(event, Start):
            self.pid = event.pid if event.pid is not None else self.pid
            self.world_size = int(event.world_size or 1)
            self.pids = list(event.pids or [])
            if self.world_size > 1:
                self._log(f"{self.world_size} ranks: " + ", ".join(f"rank {r} pid {pid}" for r, pid in enumerate(self.pids)))
            self.start_time = event.time if event.time is not None else self.start_time
            if self.status in ("idle", "starting"):
                self.status = "running"
        elif isinstance(event, Phase):
            name = str(event.name or "")
            self.phase = NEXT_PHASE.get(name, name)
            seconds = event.seconds
            self._log(f"{name} took {seconds:.1f}s" if isinstance(seconds, (int, float)) else f"{name} done")
        elif isinstance(event, Log):
            self._log(str(event.message or ""))
        elif isinstance(event, End):
            self.status = str(event.status or "completed")
            if event.error:
                self.error = str(event.error)

    def _log(self, message: str) -> None:
        self.logs.append(message)
        self.new_logs.append(message)

    def take_new_logs(self) -> list[str]:
        lines, self.new_logs = self.new_logs, []
        return lines

    def finish(self, returncode: int | None, summary: dict | None, log_tail: list[str]) -> None:
        """The process ended: settle the final status from summary.json, else from the exit code."""
        self.returncode = returncode
        self.summary = summary
        self.log_tail = list(log_tail)
        if self.run_dir is not None:
            self.rank_errors = rank_errors(self.run_dir)  # a failed rank's own line, beside rank 0's account
        if summary and summary.get("status"):
            self.status = str(summary["status"])
            self.error = summary.get("error") or self.error
        elif not self.finished:
            self.status = final_status(None, returncode)
            if self.status == "failed" and self.error is None:
                ended = f"exited with code {returncode}" if returncode not in (None, -1) else "ended"
                self.error = f"the job {ended} without writing summary.json"
        if summary and isinstance(summary.get("total_seconds"), (int, float)):
            self.elapsed = float(summary["total_seconds"])

    # What the live tab's line under the progress bar and its outcome box show; a kind adds its own.
    def counts(self) -> tuple[int | None, int]:
        """(total, done) for the progress bar."""
        return None, 0

    def stats_parts(self) -> list[str]:
        return []

    def outcome_figures(self) -> list[tuple[str, str]]:
        return []

    def eta(self) -> float | None:
        return None


progress_class = JobProgress
view_class = None  # a kind without a view of its own shows its figures and config only
