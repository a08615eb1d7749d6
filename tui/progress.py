"""What a job's events add up to: the live state the Pretrain and Evaluate tabs draw.

Both the live view (events arriving from a follower) and the Runs tab (a finished run read
from disk) fold the same events through these classes, so they always agree.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

ANSWERS = ("A", "B", "C", "D", "none")
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


@dataclass
class JobProgress:
    """State every job has: status, timing, log lines, and how it ended."""

    run_dir: Path | None = None
    status: str = "idle"  # idle | starting | running | stopping | completed | failed | stopped
    phase: str = ""
    pid: int | None = None
    world_size: int = 1  # processes of a distributed job (rank 0's events are the job's)
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
    def load(cls, run_dir: Path) -> "JobProgress":
        """A run's events folded from disk, as the live view would have seen them."""
        from core.runs import EVENTS, iter_jsonl

        progress = cls(run_dir=run_dir)
        for event in iter_jsonl(Path(run_dir) / EVENTS):
            progress.apply(event)
        progress.load_files(Path(run_dir))
        return progress

    def load_files(self, run_dir: Path) -> None:
        """Read what the kind writes besides events (results.jsonl for an evaluation)."""

    def apply(self, event: dict) -> None:
        self.apply_common(event)

    def _log(self, message: str) -> None:
        self.logs.append(message)
        self.new_logs.append(message)

    def take_new_logs(self) -> list[str]:
        lines, self.new_logs = self.new_logs, []
        return lines

    def apply_common(self, event: dict) -> None:
        kind = event.get("type")
        if isinstance(event.get("elapsed"), (int, float)):
            self.elapsed = float(event["elapsed"])
        if kind == "start":
            self.pid = event.get("pid", self.pid)
            self.world_size = int(event.get("world_size") or 1)
            self.start_time = event.get("time", self.start_time)
            if self.status in ("idle", "starting"):
                self.status = "running"
        elif kind == "phase":
            name = str(event.get("name", ""))
            self.phase = NEXT_PHASE.get(name, name)
            seconds = event.get("seconds")
            self._log(f"{name} took {seconds:.1f}s" if isinstance(seconds, (int, float)) else f"{name} done")
        elif kind == "log":
            self._log(str(event.get("message", "")))
        elif kind == "end":
            self.status = str(event.get("status") or "completed")
            if event.get("error"):
                self.error = str(event["error"])

    def finish(self, returncode: int | None, summary: dict | None, log_tail: list[str]) -> None:
        """The process ended: settle the final status from summary.json, else from the exit code."""
        self.returncode = returncode
        self.summary = summary
        self.log_tail = list(log_tail)
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


@dataclass
class PretrainProgress(JobProgress):
    total_steps: int | None = None
    steps_per_epoch: int | None = None
    epochs: int | None = None
    n_params: int | None = None
    tokens_per_epoch: int | None = None
    step: int = 0
    epoch: int = 0
    loss: float | None = None
    eval_loss: float | None = None
    lr: float | None = None
    tokens_per_s: float | None = None
    losses: list = field(default_factory=list)  # (step, loss)
    eval_points: list = field(default_factory=list)  # (step, eval_loss)
    first_loss: tuple | None = None  # (elapsed, step) of the first loss event, where the rate is measured from
    samples: dict = field(default_factory=dict)  # (prompt, mode) -> the newest generation sample

    def apply(self, event: dict) -> None:
        self.apply_common(event)
        kind = event.get("type")
        if kind in ("start", "plan"):  # the engine announces the plan once the data is tokenized
            for key in ("total_steps", "steps_per_epoch", "epochs", "n_params", "tokens_per_epoch"):
                if event.get(key) is not None:
                    setattr(self, key, event[key])
        elif kind == "loss" and isinstance(event.get("loss"), (int, float)):
            self.step = int(event.get("step", self.step))
            self.epoch = int(event.get("epoch", self.epoch))
            self.loss = float(event["loss"])
            self.lr = event.get("lr", self.lr)
            self.tokens_per_s = event.get("tokens_per_s", self.tokens_per_s)
            self.losses.append((self.step, self.loss))
            self.phase = "train"
            if self.first_loss is None:
                self.first_loss = (self.elapsed, self.step)
        elif kind == "eval" and isinstance(event.get("eval_loss"), (int, float)):
            self.eval_loss = float(event["eval_loss"])
            step = event.get("step", self.step)
            self.eval_points.append((step, self.eval_loss))
        elif kind == "heartbeat" and isinstance(event.get("step"), int):
            self.step = max(self.step, event["step"])
        elif kind == "sample" and event.get("prompt") is not None:
            self.samples[(event["prompt"], event.get("mode", "greedy"))] = event

    def eta(self) -> float | None:
        """Seconds left, from the training rate so far (time spent before training excluded)."""
        if not self.total_steps or self.first_loss is None or self.finished:
            return None
        return _eta(self.first_loss, (self.elapsed, self.step), self.total_steps)


@dataclass
class EvalProgress(JobProgress):
    total: int | None = None
    done: int = 0
    tokens_per_s: float | None = None
    batch_size: int | str | None = None
    rows: dict = field(default_factory=dict)  # index -> result row; one per question however often it arrives
    new_rows: list = field(default_factory=list)
    correct: int = 0
    answer_counts: dict = field(default_factory=lambda: dict.fromkeys(ANSWERS, 0))
    first_progress: tuple | None = None  # (elapsed, done) of the first progress event

    def apply(self, event: dict) -> None:
        self.apply_common(event)
        kind = event.get("type")
        if kind == "start":
            self.total = event.get("total", self.total)
        elif kind == "progress":
            self.done = int(event.get("done", self.done))
            self.total = event.get("total", self.total)
            self.tokens_per_s = event.get("tokens_per_s", self.tokens_per_s)
            self.batch_size = event.get("batch_size", self.batch_size)
            if self.first_progress is None:
                self.first_progress = (self.elapsed, self.done)

    def load_files(self, run_dir: Path) -> None:
        from core.runs import RESULTS, iter_jsonl

        self.add_rows(list(iter_jsonl(run_dir / RESULTS)))

    def add_rows(self, rows: list[dict]) -> None:
        for row in rows:
            key = row.get("index", len(self.rows))
            old = self.rows.get(key)
            if old is not None:
                self.correct -= bool(old.get("correct"))
                self.answer_counts[_answer(old)] -= 1
            else:
                self.new_rows.append(key)
            self.rows[key] = row
            self.correct += bool(row.get("correct"))
            self.answer_counts[_answer(row)] += 1
        self.done = max(self.done, len(self.rows))

    def take_new_rows(self) -> list[dict]:
        keys, self.new_rows = self.new_rows, []
        return [self.rows[k] for k in keys]

    @property
    def accuracy(self) -> float | None:
        return self.correct / len(self.rows) if self.rows else None

    def eta(self) -> float | None:
        if not self.total or self.first_progress is None or self.finished:
            return None
        return _eta(self.first_progress, (self.elapsed, self.done), self.total)


def _answer(row: dict) -> str:
    pred = row.get("pred")
    return pred if pred in ANSWERS[:4] else "none"


def _eta(first: tuple, now: tuple, total: int) -> float | None:
    """Seconds until `total`, at the rate seen between two (elapsed, count) readings."""
    (t0, n0), (t1, n1) = first, now
    if n1 <= n0 or t1 <= t0:
        return None
    return (t1 - t0) / (n1 - n0) * max(0, total - n1)


@dataclass
class FinetuneProgress(PretrainProgress):
    """A fine-tuning run: the training curve of PretrainProgress, the adapter's size and the test answers."""

    trainable_params: int | None = None
    total_params: int | None = None
    trainable_ratio: float | None = None
    test_phase: str = ""          # "before" or "after" while the test questions are being answered
    test_done: int = 0
    test_total: int | None = None

    def apply(self, event: dict) -> None:
        super().apply(event)
        kind = event.get("type")
        if kind == "lora":
            self.trainable_params = event.get("trainable_params")
            self.total_params = event.get("total_params")
            self.trainable_ratio = event.get("trainable_ratio")
        elif kind == "progress":
            self.test_phase = str(event.get("phase", ""))
            self.test_done, self.test_total = int(event.get("done", 0)), event.get("total")
            self.phase = f"test {self.test_phase}"
        elif kind in ("plan", "loss", "eval"):  # training (again): the test answers are not what runs now
            self.test_phase = ""
