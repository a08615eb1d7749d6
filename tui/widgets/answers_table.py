"""Several runs' answers to the same questions side by side: one row per question, one column per run."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable


class AnswersTable(DataTable):
    """Columns: the question, its gold letter, then each run's answer (green when right, red when wrong).

    The first row is each run's accuracy over the questions shown, so a vote's gain over its voters
    reads at a glance.
    """

    def __init__(self, labels: list[str], id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.labels = labels

    def show(self, runs_rows: list[dict]) -> None:
        """`runs_rows[i]` maps a question key to run i's result row."""
        self.clear(columns=True)
        self.add_column("question", key="question")
        self.add_column("gold", key="gold")
        for label in self.labels:
            self.add_column(label, key=label)
        keys = list(dict.fromkeys(k for rows in runs_rows for k in rows))
        accuracy = [Text(f"{sum(bool(r.get('correct')) for r in rows.values()) / len(rows):.0%}" if rows else "-",
                         style="bold") for rows in runs_rows]
        self.add_row(Text("accuracy", style="bold"), "", *accuracy, key="__accuracy__")
        for key in keys:
            first = next(rows[key] for rows in runs_rows if key in rows)
            cells = []
            for rows in runs_rows:
                row = rows.get(key)
                if row is None:
                    cells.append(Text("·", style="dim"))
                else:
                    cells.append(Text(str(row.get("pred") or "–"), style="green" if row.get("correct") else "red"))
            name = f"{first.get('index', key)} {first.get('subject') or ''}".strip()
            self.add_row(name, str(first.get("gold", "")), *cells, key=key)
