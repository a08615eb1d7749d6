"""Jobs as separate processes: launch `llmlab pretrain/eval`, stop them, find them again, follow their files.

Nothing here imports Textual: the app runs `JobFollower.poll` in a thread worker and posts what it
reads as messages, so everything in this module can be tested with plain files and processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import UsageError
from core.kinds import kinds
from core.runs import CONFIG, EVENTS, JOB_LOG, RESULTS, RUNS_ENV, SUMMARY, read_json
from core.runs import claim_run_dir as claim_in_core

# One poll reads at most this much of a file, so a replay of a long run arrives in bounded messages.
MAX_READ_BYTES = 4 * 2**20
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


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def started_by(pid: int, start_time: float | None) -> bool:
    """Whether `pid` is still the process that wrote a start event at `start_time` (not a reused pid)."""
    if not pid_alive(pid):
        return False
    if start_time is None:
        return True
    try:
        import psutil

        return psutil.Process(pid).create_time() <= start_time + 5
    except Exception:
        return True


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


def first_event(path: Path) -> dict | None:
    """The first complete line of a JSONL file (the start event of events.jsonl)."""
    try:
        with open(path, encoding="utf-8") as fh:
            line = fh.readline()
    except OSError:
        return None
    if not line.endswith("\n"):
        return None
    try:
        return json.loads(line)
    except ValueError:
        return None


def last_event(path: Path, window: int = 65536) -> dict | None:
    """The last complete line of a JSONL file, reading only its tail."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - window))
            data = fh.read()
    except OSError:
        return None
    for line in reversed(data.split(b"\n")[:-1]):  # the piece after the last newline is torn or empty
        try:
            return json.loads(line)
        except ValueError:
            continue
    return None


def find_running_jobs(root: Path) -> list[Job]:
    """Jobs still running from an earlier session: no summary.json and a live start-event pid."""
    if not root.is_dir():
        return []
    jobs = []
    for run_dir in sorted(root.iterdir(), key=lambda p: p.name):
        if not run_dir.is_dir() or (run_dir / SUMMARY).exists():
            continue
        start = first_event(run_dir / EVENTS)
        if not start or start.get("type") != "start" or not isinstance(start.get("pid"), int):
            continue
        if not started_by(start["pid"], start.get("time")):
            continue
        kind = start.get("kind") or (read_json(run_dir / CONFIG) or {}).get("kind")
        if kind in kinds():
            jobs.append(Job(kind=kind, run_dir=run_dir.resolve(), pid=start["pid"]))
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


class JsonlTail:
    """Reads the lines appended to a JSONL file since the last call, by byte offset.

    A half-written last line is left for the next call; a line that is not JSON is skipped;
    a file that shrank or was replaced (an eval rewrites results.jsonl in question order at its
    end) is read again from the start. Readers key rows by question, so a re-read adds nothing twice.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.offset = 0
        self.inode: int | None = None

    def read_new(self) -> list[dict]:
        try:
            with open(self.path, "rb") as fh:
                inode = os.fstat(fh.fileno()).st_ino
                fh.seek(0, os.SEEK_END)
                if fh.tell() < self.offset or (self.inode is not None and inode != self.inode):
                    self.offset = 0
                self.inode = inode
                fh.seek(self.offset)
                data = fh.read(MAX_READ_BYTES)
        except OSError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        records = []
        for line in data[: end + 1].splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records


class JobFollower:
    """Everything new in a run folder's events.jsonl and results.jsonl since the last poll."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.events = JsonlTail(self.run_dir / EVENTS)
        self.results = JsonlTail(self.run_dir / RESULTS)

    def poll(self) -> tuple[list[dict], list[dict]]:
        return self.events.read_new(), self.results.read_new()
