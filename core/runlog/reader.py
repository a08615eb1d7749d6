"""The one reader of run folders, for the engine and the app alike.

It answers the questions every reader of a run folder asks, each in one place:
- what a run is and how it went: its config, summary, typed events and results rows;
- whether it is still going (`RunFolder.running_pid`, the one rule: its newest `start` has no
  `end` after it, and the process that wrote that start is still alive);
- which result rows are the same question across runs (`question_key`);
- what a live run has added since the last look (`RunFollower`, read by byte offset).

Readers never write, and every read tolerates a writer in the middle of a line: JSON files are
replaced atomically and a torn last JSONL line is skipped until it is whole.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from core.runlog.events import End, EvalLoss, Event, Loss, Resume, Start, parse
from core.runs import CONFIG, EVENTS, JOB_LOG, RESULTS, SUMMARY, iter_jsonl, read_json

# One follower poll reads at most this much of a file, so replaying a long run arrives in bounded pieces.
MAX_READ_BYTES = 4 * 2**20


def read_events(path: Path) -> Iterator[Event]:
    """Every complete line of an events.jsonl as a typed event."""
    for record in iter_jsonl(path):
        if isinstance(record, dict):
            yield parse(record)


def question_key(row: dict) -> str:
    """What makes two result rows the same question, in any kind that answers questions.

    Rows carry `qid` (eval: the data file's row index; fine-tune tests: the question's content id;
    squad and math: the data's own id). Older run folders lack it: their question_id, id or index stands in.
    """
    for name in ("qid", "question_id", "id", "index"):
        value = row.get(name)
        if value is not None and value != "":
            return str(value)
    return ""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but someone else's
        return True
    return True


def started_by(pid: int, start_time: float | None) -> bool:
    """Whether `pid` is alive and still the process that wrote a start event at `start_time` (not a reused pid)."""
    if not pid_alive(pid):
        return False
    if start_time is None:
        return True
    try:
        import psutil

        return psutil.Process(pid).create_time() <= start_time + 5
    except Exception:  # psutil cannot tell (gone meanwhile, or no access): trust the pid
        return True


def _last_line(path: Path, window: int = 65536) -> dict | None:
    """The last complete line of a JSONL file, reading only its tail."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - window))
            data = fh.read()
    except OSError:
        return None
    for line in reversed(data.split(b"\n")[:-1]):  # the piece after the last newline is torn or empty
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            return record
    return None


def _first_line(path: Path) -> dict | None:
    try:
        with open(path, "rb") as fh:
            line = fh.readline()
    except OSError:
        return None
    if not line.endswith(b"\n"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


@dataclass
class RunFolder:
    """One run folder, read on demand (nothing is cached: a live run changes under the reader)."""

    path: Path
    _config: dict | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.path.name

    def config(self) -> dict:
        if self._config is None:
            self._config = read_json(self.path / CONFIG) or {}
        return self._config

    def summary(self) -> dict | None:
        return read_json(self.path / SUMMARY)

    def events(self) -> Iterator[Event]:
        return read_events(self.path / EVENTS)

    def first_event(self) -> Event | None:
        record = _first_line(self.path / EVENTS)
        return parse(record) if record else None

    def last_event(self) -> Event | None:
        record = _last_line(self.path / EVENTS)
        return parse(record) if record else None

    def loss_series(self) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        """([(step, train loss)], [(step, held-out loss)]) of a training run; a resume repeats the steps after its
        checkpoint, so the points past it from before the resume are dropped."""
        train: list[tuple[int, float]] = []
        evals: list[tuple[int, float]] = []
        for event in self.events():
            if isinstance(event, Resume) and event.step is not None:
                train = [p for p in train if p[0] <= event.step]
                evals = [p for p in evals if p[0] <= event.step]
            elif isinstance(event, Loss):
                train.append((event.step, event.loss))
            elif isinstance(event, EvalLoss):
                evals.append((event.step, event.eval_loss))
        return train, evals

    def results(self, name: str = RESULTS) -> list[dict]:
        return [row for row in iter_jsonl(self.path / name) if isinstance(row, dict)]

    def kind(self, summary: dict | None = None) -> str | None:
        """The run's kind: its summary's, its config's, or its first start event's."""
        start = self.first_event()
        return ((summary or {}).get("kind") or self.config().get("kind")
                or (start.kind if isinstance(start, Start) else None))

    def looks_like_a_run(self) -> bool:
        return any((self.path / name).exists() for name in (CONFIG, EVENTS, JOB_LOG))

    def running_pid(self, ignore_self: bool = True) -> int | None:
        """The pid of the live process still writing this run, or None.

        The one rule: the newest `start` event has no `end` after it, and the process that wrote it
        is still alive (and is the same process, not a reused pid). A job killed outright never
        writes its end, but its pid is gone, so the run counts as not running and may be resumed.
        `ignore_self`: this very process never counts (a run it stopped and now resumes).
        """
        last = self.last_event()
        if last is None or isinstance(last, End):
            return None
        start = None
        for event in self.events():
            if isinstance(event, Start):
                start = event
            elif isinstance(event, End):
                start = None
        if start is None or not isinstance(start.pid, int) or (ignore_self and start.pid == os.getpid()):
            return None
        return start.pid if started_by(start.pid, start.time) else None

    def status(self, summary: dict | None = None) -> str:
        """completed | stopped | failed from its summary; running while a live process writes it; else crashed."""
        if self.running_pid() is not None:
            return "running"
        summary = self.summary() if summary is None else summary
        if summary and summary.get("status"):
            return str(summary["status"])
        return "crashed"

    def is_running(self) -> bool:
        return self.running_pid() is not None


def scan_folders(root: Path) -> list[RunFolder]:
    """Every folder under the runs folder that is a run (or a job that has not written its config yet)."""
    if not Path(root).is_dir():
        return []
    return [RunFolder(p) for p in Path(root).iterdir() if p.is_dir() and RunFolder(p).looks_like_a_run()]


class JsonlTail:
    """The lines appended to a JSONL file since the last call, read by byte offset.

    A half-written last line is left for the next call; a line that is not JSON is skipped; a file
    that shrank or was replaced (an eval rewrites results.jsonl in question order at its end) is
    read again from the start. Readers key rows by question, so a re-read adds nothing twice.
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


class RunFollower:
    """What a run folder's events.jsonl and results.jsonl gained since the last poll: (typed events, result rows)."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.events = JsonlTail(self.run_dir / EVENTS)
        self.results = JsonlTail(self.run_dir / RESULTS)

    def poll(self) -> tuple[list[Event], list[dict]]:
        return [parse(r) for r in self.events.read_new()], self.results.read_new()


class RunsReader:
    """The runs folder as the app sees it: a list of run folders, any one of them, and a follower for a live one.

    The app takes one as a constructor argument (tests hand it a folder of fakes), the way memray's
    TUI takes its reader.
    """

    def __init__(self, root: Path):
        self.root = Path(root).resolve()

    def scan(self) -> list[RunFolder]:
        return scan_folders(self.root)

    def folder(self, path: Path) -> RunFolder:
        return RunFolder(Path(path))

    def follow(self, path: Path) -> RunFollower:
        return RunFollower(Path(path))

    def running(self) -> list[RunFolder]:
        """Runs a live process is still writing (jobs an earlier app session left running)."""
        return [run for run in self.scan() if run.is_running()]


def load_run_config(run_dir: str | Path, kind: str) -> tuple[Path, dict]:
    """The folder and config.json of a `kind` run that may be resumed, or one clear UsageError."""
    from core.errors import UsageError
    from core.kinds import get

    path = Path(run_dir).expanduser()
    config = read_json(path / CONFIG)
    wanted = get(kind)
    noun = wanted.noun if wanted else kind
    if config is None:
        raise UsageError(f"{path} is not a run directory (no readable {CONFIG}); pass the folder of {noun}")
    actual = config.get("kind")
    if actual != kind:
        other = get(actual)
        if other is not None and other.resumable:
            raise UsageError(f"{path} is {other.noun}, not {noun}; resume it with 'llmlab {actual} --resume {path}'")
        if other is not None:
            raise UsageError(f"{path} is {other.noun}, not {noun}")
        raise UsageError(f"{path} is not {noun} (its {CONFIG} says kind {actual!r})")
    pid = RunFolder(path).running_pid()
    if pid is not None:
        raise UsageError(f"{path} is still being written by process {pid}; stop that job first")
    return path, config


__all__ = ["RunFolder", "RunFollower", "RunsReader", "JsonlTail", "read_events", "scan_folders", "question_key",
           "pid_alive", "started_by", "load_run_config", "MAX_READ_BYTES"]
