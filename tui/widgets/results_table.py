"""The evaluation's questions as they finish: one row per question, selectable for the full text."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

REPLY_CHARS = 60


def reply_preview(reply: str | None, limit: int = REPLY_CHARS) -> str:
    """The first characters of a reply on one line."""
    flat = " ".join(str(reply or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class ResultsTable(DataTable):
    """Columns #, subject, gold, predicted, ✓/✗ and the start of the reply; keyed by question index."""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.rows_by_key: dict[str, dict] = {}

    def on_mount(self) -> None:
        self.add_column("#", key="index")
        self.add_column("subject", key="subject")
        self.add_column("gold", key="gold")
        self.add_column("pred", key="pred")
        self.add_column("ok", key="ok")
        self.add_column("reply", key="reply")

    def reset(self) -> None:
        self.clear()
        self.rows_by_key.clear()

    def add_results(self, rows: list[dict]) -> None:
        for row in rows:
            key = str(row.get("index", len(self.rows_by_key)))
            correct = bool(row.get("correct"))
            cells = (
                key,
                Text(str(row.get("subject", "")), overflow="ellipsis"),
                str(row.get("gold", "")),
                str(row.get("pred") or "-"),
                Text("✓", style="bold green") if correct else Text("✗", style="bold red"),
                reply_preview(row.get("output")),
            )
            if key in self.rows_by_key:
                for column, value in zip(("index", "subject", "gold", "pred", "ok", "reply"), cells):
                    self.update_cell(key, column, value)
            else:
                self.add_row(*cells, key=key)
            self.rows_by_key[key] = row

    def row_for(self, key: str) -> dict | None:
        return self.rows_by_key.get(key)
