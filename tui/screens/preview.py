"""A corpus as a tokenizer sees it, before training: the same figures as `llmlab data preview`."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class PreviewScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,p", "dismiss", "Close")]
    AUTO_FOCUS = "#preview"

    def __init__(self, data: str, tokenizer: str, block_size: int, note: str = "") -> None:
        super().__init__()
        self.data, self.tokenizer, self.block_size, self.note = data, tokenizer, block_size, note

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="preview", classes="dialog"):
            yield Static(Text(f"Reading {self.data} …", style="dim"), id="preview-text")

    def on_mount(self) -> None:
        self.query_one("#preview").border_title = "Data preview"
        self._read()

    @work(thread=True, exit_on_error=False, group="preview", description="Reading the data")
    def _read(self) -> None:
        from core.errors import UsageError
        from core.preview import preview, render

        try:
            lines = render(preview(self.data, self.tokenizer, self.block_size, rows=10_000))
            text = Text("\n".join(([self.note, ""] if self.note else []) + lines))
        except UsageError as exc:
            text = Text(str(exc), style="red")
        self.app.call_from_thread(self.query_one("#preview-text", Static).update, text)
