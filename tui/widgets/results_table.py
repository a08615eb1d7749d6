"""The evaluation's questions as they finish: one row per question, selectable for the full text."""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size
from rich.text import Text
from textual import on
from textual.widgets import DataTable

from core.runlog import question_key
from tui.messages import ResultRequested

FIXED_COLUMNS = 44  # cells taken by #, subject, gold, pred, ok and the padding of all six columns


def reply_preview(reply: str | None, cells: int) -> str:
    """The start of a reply on one line, at most `cells` terminal cells wide (CJK characters take two)."""
    flat = " ".join(str(reply or "").split())
    if cell_len(flat) <= cells:
        return flat
    return set_cell_size(flat, cells - 1).rstrip() + "…"


class ResultsTable(DataTable):
    """Columns #, subject, gold, predicted, ✓/✗ and the start of the reply; keyed by question (core.runlog's key).

    Enter on a row opens the question's full prompt and reply, wherever the table is shown.
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.rows_by_key: dict[str, dict] = {}
        self._reply_cells = 0

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        self._reply_cells = self.reply_cells()
        self.add_column("#", key="index")
        self.add_column("subject", key="subject")
        self.add_column("gold", key="gold")
        self.add_column("pred", key="pred")
        self.add_column("ok", key="ok")
        self.add_column("reply", key="reply", width=self._reply_cells)

    def reset(self) -> None:
        self.clear()
        self.rows_by_key.clear()

    def reply_cells(self) -> int:
        """How wide the reply column may be so that the table never scrolls sideways."""
        return max(16, (self.size.width or 80) - FIXED_COLUMNS - 2)

    def on_resize(self) -> None:
        if self._reply_cells != self.reply_cells():  # rebuild at the new width, keeping the cursor
            cursor = self.cursor_row
            rows = list(self.rows_by_key.values())
            self.clear(columns=True)
            self.rows_by_key.clear()
            self._add_columns()
            self.add_results(rows)
            if rows:
                self.move_cursor(row=min(cursor, len(rows) - 1), animate=False)

    def add_results(self, rows: list[dict]) -> None:
        reply_cells = self._reply_cells
        for row in rows:
            key = question_key(row) or str(len(self.rows_by_key))
            correct = bool(row.get("correct"))
            cells = (
                key,
                Text(str(row.get("subject", "")), overflow="ellipsis"),
                str(row.get("gold", "")),
                str(row.get("pred") or "-"),
                Text("✓", style="bold green") if correct else Text("✗", style="bold red"),
                reply_preview(row.get("output"), reply_cells),
            )
            if key in self.rows_by_key:
                for column, value in zip(("index", "subject", "gold", "pred", "ok", "reply"), cells):
                    self.update_cell(key, column, value)
            else:
                self.add_row(*cells, key=key)
            self.rows_by_key[key] = row

    def row_for(self, key: str) -> dict | None:
        return self.rows_by_key.get(key)

    @on(DataTable.RowSelected)
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        row = self.row_for(str(event.row_key.value))
        if row is not None:
            self.post_message(ResultRequested(row))
