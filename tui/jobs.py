"""Jobs as separate processes: launch `llmlab <kind> ...`, stop them, find the ones still running.

Nothing here imports Textual, and nothing here reads run folders itself: that is the run-folder
reader's work (core.runlog, which the app is given), so everything here can be tested with plain
files and processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import UsageError
from core.kinds import kinds
from core.runlog import RunsReader
from core.runlog.reader import pid_alive
from core.runs import JOB_LOG, RUNS_ENV
from core.runs import claim_run_dir as claim_in_core

# Seconds after a first Stop before a second one ends the job instead of waiting for its step.
FORCE_AFTER = 10.0


class LaunchError(Exception):
    """A job could not be started; the message says why in one line."""


class Launcher:
    """Builds a job's command line: the same `llmlab <kind> ...` a user could type."""

    def argv(self, kind: str, options: list[str], run_dir: Path) -> list[str]:
        return [sys.executable, "-m", "core", kind, *options, "--out", str(run_dir)]


@dataclass
class Job:
    """A running (or finished) job: its run folder, and its process when this app started it."""

    kind: str
    run_dir: Path
    pid: int | None
    process: subprocess.Popen | None = None
    stop_requested: float | None = None  # when Stop was first pressed (time.monotonic)
    argv: list[str] = field(default_factory=list)

    @property
    def log_path(self) -> Path:
        return self.run_dir / JOB_LOG

    def returncode(self) -> int | None:
        """None while the job runs; its exit status after (-1 when it was not our child)."""
        if self.process is not None:
            return self.process.poll()
        if self.pid is not None and pid_alive(self.pid):
            return None
        return -1

    def is_running(self) -> bool:
        return self.returncode() is None

    def stop(self) -> str | None:
        """Ask the job to finish its current step and write status `stopped`; say what was done.

        "asked": SIGINT sent. "waiting": asked less than FORCE_AFTER seconds ago, so nothing is
        sent (the engine takes a second signal as "stop now, without saving the model", so a
        double press must not send one). "forced": asked long enough ago, so SIGTERM ends the
        job's process group (or only the job, when it does not lead its own group, e.g. started
        from a shell). None: the job had already ended.
        """
        if self.pid is None or not self.is_running():
            return None
        now = time.monotonic()
        if self.stop_requested is not None and now - self.stop_requested < FORCE_AFTER:
            return "waiting"
        try:
            if self.stop_requested is None:
                os.kill(self.pid, signal.SIGINT)
                self.stop_requested = now
                return "asked"
            if os.getpgid(self.pid) == self.pid:
                os.killpg(self.pid, signal.SIGTERM)
            else:
                os.kill(self.pid, signal.SIGTERM)
            return "forced"
        except (ProcessLookupError, PermissionError):
            return None


def claim_run_dir(root: Path, kind: str, out: str | None = None) -> Path:
    """Create the job's run folder now (core's claim), so its job.log can exist before the job starts.

    The engine accepts a folder that holds only job.log as fresh, so the job is then started
    with `--out <folder>`.
    """
    try:
        return claim_in_core(kind, out, root=root)
    except UsageError as exc:
        raise LaunchError(str(exc)) from None


def launch(kind: str, options: list[str], root: Path, launcher: Launcher, out: str | None = None) -> Job:
    """Start a job in its own session with stdout and stderr going to `<run dir>/job.log`."""
    if kind not in kinds():
        raise LaunchError(f"unknown job kind {kind!r}")
    run_dir = claim_run_dir(root, kind, out)
    argv = launcher.argv(kind, options, run_dir)
    env = {**os.environ, RUNS_ENV: str(root.resolve()), "PYTHONUNBUFFERED": "1"}
    with open(run_dir / JOB_LOG, "ab") as log:
        log.write(("$ " + " ".join(argv) + "\n").encode())
        log.flush()
        try:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env, start_new_session=True,  # its own session: Ctrl-C in the app or a closed SSH link never reaches it
            )
        except OSError as exc:
            raise LaunchError(f"cannot start {argv[0]}: {exc.strerror}") from None
    return Job(kind=kind, run_dir=run_dir, pid=process.pid, process=process, argv=argv)


def find_running_jobs(runs: RunsReader | Path) -> list[Job]:
    """Jobs still running from an earlier session: run folders a live process is still writing (core.runlog's rule)."""
    reader = runs if isinstance(runs, RunsReader) else RunsReader(runs)
    jobs = []
    for run in sorted(reader.running(), key=lambda r: r.name):
        kind = run.kind()
        if kind in kinds():
            jobs.append(Job(kind=kind, run_dir=run.path.resolve(), pid=run.running_pid()))
    return jobs


def tail_lines(path: Path, n: int = 15, window: int = 32768) -> list[str]:
    """The last `n` lines of a text file (job.log); progress-bar carriage returns keep their last frame."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - window))
            data = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    lines = [line.rstrip("\r").rsplit("\r", 1)[-1].rstrip() for line in data.split("\n")]
    return [line for line in lines if line][-n:]
