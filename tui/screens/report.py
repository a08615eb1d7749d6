"""A run's report.md, read inside the app (a terminal over SSH has no browser to open it in)."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Markdown, Static


class ReportScreen(Screen[None]):
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back")]
    AUTO_FOCUS = "#report"  # screens would inherit the app's "#hardware-tab": the keys would scroll nothing

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def compose(self) -> ComposeResult:
        yield Static(f"{self.path.parent.name}/{self.path.name}", classes="screen-title")
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            text = f"Cannot read `{self.path}`: {exc.strerror}"
        with VerticalScroll(id="report", can_focus=True):
            yield Markdown(text)
        yield Footer(compact=True)
