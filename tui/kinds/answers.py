"""The kinds that answer questions (squad, math, vote, and any new one with `results`): rows, accuracy, a table.

`AnswersProgress` keeps one row per question (core.runlog's `question_key`, however often a row
arrives: a resumed or re-read results file), the running count of right answers and the progress
events' done/total; `AnswersView` is its results table, live or read from disk. Kinds name their
answer and gold differently (SQuAD's `prediction` and `golds`, math's `reply`), so rows are shown
through `display_row`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.app import ComposeResult
from textual.containers import Vertical

from core.runlog import Event, Progress, Start, question_key
from tui import format as fmt
from tui.kinds.base import JobProgress, eta
from tui.widgets.results_table import ResultsTable


def display_row(row: dict) -> dict:
    """A results row with the names the table reads: index, pred, gold, correct and output."""
    golds = row.get("golds") or []
    return {**row, "index": row.get("index", question_key(row)), "pred": row.get("pred", row.get("prediction")),
            "gold": row.get("gold", golds[0] if golds else ""),
            "correct": row.get("correct", row.get("em") == 1.0), "output": row.get("output", row.get("reply", ""))}


@dataclass
class AnswersProgress(JobProgress):
    total: int | None = None
    done: int = 0
    rows: dict = field(default_factory=dict)  # question key -> result row; one per question however often it arrives
    new_rows: list = field(default_factory=list)
    correct: int = 0
    first_progress: tuple | None = None  # (elapsed, done) of the first progress event

    def apply_event(self, event: Event) -> None:
        super().apply_event(event)
        if isinstance(event, Start):
            self.total = event.total if event.total is not None else self.total
        elif isinstance(event, Progress):
            self.done = int(event.done if event.done is not None else self.done)
            self.total = event.total if event.total is not None else self.total
            if self.first_progress is None:
                self.first_progress = (self.elapsed, self.done)

    def load_files(self, run) -> None:
        self.add_rows(run.results())

    def add_rows(self, rows: list[dict]) -> None:
        for row in rows:
            key = question_key(row) or str(len(self.rows))
            old = self.rows.get(key)
            if old is not None:
                self.forget(old)
            else:
                self.new_rows.append(key)
            self.rows[key] = row
            self.count(row)
        self.done = max(self.done, len(self.rows))

    def count(self, row: dict) -> None:
        self.correct += bool(display_row(row)["correct"])

    def forget(self, row: dict) -> None:
        self.correct -= bool(display_row(row)["correct"])

    def take_new_rows(self) -> list[dict]:
        keys, self.new_rows = self.new_rows, []
        return [self.rows[k] for k in keys]

    @property
    def accuracy(self) -> float | None:
        return self.correct / len(self.rows) if self.rows else None

    def eta(self) -> float | None:
        return None if self.finished else eta(self.first_progress, (self.elapsed, self.done), self.total)

    def counts(self) -> tuple[int | None, int]:
        return self.total, self.done

    def stats_parts(self) -> list[str]:
        parts = [f"{self.done:,}/{self.total:,}" if self.total else f"{self.done:,} done"]
        parts.append(f"acc {fmt.percent(self.accuracy)}" if self.accuracy is not None else "acc -")
        if self.world_size > 1:
            parts.append(f"{self.world_size} processes")
        if not self.finished:
            parts.append(f"ETA {fmt.duration(self.eta())}")
        return parts

    def outcome_figures(self) -> list[tuple[str, str]]:
        summary = self.summary or {}
        accuracy = summary.get("accuracy", self.accuracy)
        if not isinstance(accuracy, (int, float)):
            return []
        return [("accuracy", f"{accuracy * 100:.1f}% of {summary.get('n', len(self.rows))}")]


def rows_in_order(progress: AnswersProgress) -> list[dict]:
    """The rows as the table lists them: by their index when they have one (a finished run's own order otherwise)."""
    rows = [display_row(r) for r in progress.rows.values()]
    return sorted(rows, key=lambda row: (not isinstance(row.get("index"), int), row.get("index")
                                         if isinstance(row.get("index"), int) else 0))


class AnswersView(Vertical):
    """The results table of a run that answered questions: filled live row by row, or all at once from disk."""

    takes_keys = True  # a run screen gives it the keys (a table to move through)

    def __init__(self, live: bool = True, id: str | None = None) -> None:
        super().__init__(id=id, classes="kind-view")
        self.live = live

    def compose(self) -> ComposeResult:
        yield ResultsTable(id="results")

    def reset(self) -> None:
        self.query_one(ResultsTable).reset()

    def show(self, progress: AnswersProgress) -> None:
        table = self.query_one(ResultsTable)
        if not self.live:  # a run read from disk: every row at once, in question order
            table.add_results(rows_in_order(progress))
            return
        following = table.row_count == 0 or table.cursor_row >= table.row_count - 1
        new_rows = progress.take_new_rows()
        if new_rows:
            table.add_results([display_row(r) for r in new_rows])
            if following:
                table.move_cursor(row=table.row_count - 1)


progress_class = AnswersProgress
view_class = AnswersView
