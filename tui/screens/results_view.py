"""The run screen's view for kinds without a tab of their own that answer questions (squad, math, vote):
their results.jsonl as a table, whatever each kind calls its answer and its gold."""

from __future__ import annotations

from textual.app import ComposeResult

from tui.widgets.results_table import ResultsTable


def display_row(row: dict) -> dict:
    """A results row with the names the table reads: pred, gold, correct and output."""
    golds = row.get("golds") or []
    return {**row, "index": row.get("index", row.get("id")), "pred": row.get("pred", row.get("prediction")),
            "gold": row.get("gold", golds[0] if golds else ""),
            "correct": row.get("correct", row.get("em") == 1.0), "output": row.get("output", row.get("reply", ""))}


class ResultsView:
    run_focus = "#results"

    @classmethod
    def compose_run_view(cls) -> ComposeResult:
        yield ResultsTable(id="results")

    @classmethod
    def show_run(cls, screen, progress) -> None:
        rows = [display_row(r) for r in getattr(progress, "rows", {}).values()]
        screen.query_one(ResultsTable).add_results(rows)
