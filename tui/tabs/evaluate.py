"""The Evaluate tab: the options of `llmlab eval`, and the questions filling a table as they finish."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from core.eval.config import EvalConfig
from tui import format as fmt
from tui.options import form_fields
from tui.progress import EvalProgress
from tui.tabs.job_tab import JobTab
from tui.widgets.answer_bars import AnswerBars
from tui.widgets.results_table import ResultsTable


class EvaluateTab(JobTab):
    kind = "eval"
    title = "Evaluate"
    progress_class = EvalProgress
    fields = form_fields(EvalConfig, ("model", "data", "locale", "subject", "limit", "max_new_tokens", "batch_size",
                                      "mode", "dtype"))
    demo_values = {"model": "bundled demo model", "data": "bundled demo questions"}
    run_focus = "#results"
    help = "In Evaluate, Enter on a row shows the full\nprompt and reply."

    progress: EvalProgress

    def compose_live(self) -> ComposeResult:
        yield AnswerBars(id="answers")
        yield ResultsTable(id="results")

    @classmethod
    def compose_run_view(cls) -> ComposeResult:
        yield AnswerBars(id="answers")
        yield ResultsTable(id="results")

    @classmethod
    def show_run(cls, screen, progress: EvalProgress) -> None:
        screen.query_one(AnswerBars).update(progress.answer_counts)
        rows = sorted(progress.rows.values(), key=lambda row: (not isinstance(row.get("index"), int), row.get("index")))
        screen.query_one(ResultsTable).add_results(rows)

    def reset_live(self) -> None:
        self.query_one(ResultsTable).reset()
        self.query_one(AnswerBars).update(self.progress.answer_counts)

    def apply_results(self, rows: list[dict]) -> None:
        self.progress.add_rows(rows)
        self.dirty = True

    def render_live(self) -> None:
        p = self.progress
        table = self.query_one(ResultsTable)
        following = table.row_count == 0 or table.cursor_row >= table.row_count - 1
        new_rows = p.take_new_rows()
        if new_rows:
            table.add_results(new_rows)
            if following:
                table.move_cursor(row=table.row_count - 1)
        self.query_one(AnswerBars).update(p.answer_counts)
        self.set_progress(p.total, p.done)
        parts = [f"{p.done:,}/{p.total:,}" if p.total else f"{p.done:,} done"]
        parts.append(f"acc {fmt.percent(p.accuracy)}" if p.accuracy is not None else "acc -")
        parts.append(fmt.rate(p.tokens_per_s))
        if p.world_size > 1:
            parts.append(f"{p.world_size} processes")
        if not p.finished:
            parts.append(f"ETA {fmt.duration(p.eta())}")
        self.query_one("#stats", Static).update(" · ".join(parts))

    def outcome_figures(self) -> list[tuple[str, str]]:
        summary = self.progress.summary or {}
        accuracy = summary.get("accuracy", self.progress.accuracy)
        figures = []
        if isinstance(accuracy, (int, float)):
            n = summary.get("n", len(self.progress.rows))
            figures.append(("accuracy", f"{accuracy * 100:.1f}% of {n}"))
        return figures
