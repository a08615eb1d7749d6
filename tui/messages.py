"""Messages that workers and widgets post and the app's handlers apply: each names something that has happened.

Screens open through these too (`RunRequested`, `ReportRequested`, ...): a tab or widget says what
the user asked to see, and the App pushes the screen, so no tab or widget imports a screen."""

from __future__ import annotations

from pathlib import Path

from textual.message import Message

from tui.hardware import HardwareSample
from tui.jobs import Job
from tui.runinfo import RunInfo


class EventsRead(Message):
    """New lines of a job's events.jsonl were read."""

    def __init__(self, run_dir: Path, events: list[dict]) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.events = events


class ResultsRead(Message):
    """New lines of an evaluation's results.jsonl were read."""

    def __init__(self, run_dir: Path, rows: list[dict]) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.rows = rows


class JobExited(Message):
    """A job's process ended; its summary (if written) and the tail of its job.log come along."""

    def __init__(self, run_dir: Path, returncode: int | None, summary: dict | None, log_tail: list[str]) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.returncode = returncode
        self.summary = summary
        self.log_tail = log_tail


class RunningJobsFound(Message):
    """Jobs that an earlier session left running were found in the runs folder."""

    def __init__(self, jobs: list[Job]) -> None:
        super().__init__()
        self.jobs = jobs


class HardwareSampled(Message):
    """A new reading of GPUs, CPU, memory and disk was taken."""

    def __init__(self, sample: HardwareSample) -> None:
        super().__init__()
        self.sample = sample


class RunsScanned(Message):
    """The runs folder was read again."""

    def __init__(self, runs: list[RunInfo]) -> None:
        super().__init__()
        self.runs = runs


class JobRequested(Message):
    """The user asked a tab to start a job with these command-line options."""

    def __init__(self, kind: str, options: list[str], out: str | None) -> None:
        super().__init__()
        self.kind = kind
        self.options = options
        self.out = out


class StopRequested(Message):
    """The user asked to stop the job shown in a tab."""

    def __init__(self, run_dir: Path) -> None:
        super().__init__()
        self.run_dir = run_dir


class RunsLoaded(Message):
    """Runs were read from disk (events folded, results collected) for a run or compare screen."""

    def __init__(self, progresses: list) -> None:
        super().__init__()
        self.progresses = progresses


class RunRequested(Message):
    """The user asked to open a run (its live tab while it runs, else its run screen)."""

    def __init__(self, run: RunInfo) -> None:
        super().__init__()
        self.run = run


class ChatRequested(Message):
    """The user asked to talk to a finished run's model."""

    def __init__(self, run: RunInfo) -> None:
        super().__init__()
        self.run = run


class ComparisonRequested(Message):
    """The user asked to compare the marked runs side by side."""

    def __init__(self, runs: list[RunInfo]) -> None:
        super().__init__()
        self.runs = runs


class ReportRequested(Message):
    """The user asked to read a run's report.md."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path


class ResultRequested(Message):
    """The user asked to see one answered question in full (prompt and reply)."""

    def __init__(self, row: dict) -> None:
        super().__init__()
        self.row = row


class PreviewRequested(Message):
    """The user asked to see a corpus as a tokenizer sees it, before training on it."""

    def __init__(self, data: str, tokenizer: str, block_size: int, note: str = "") -> None:
        super().__init__()
        self.data, self.tokenizer, self.block_size, self.note = data, tokenizer, block_size, note
