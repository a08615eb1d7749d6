"""One evaluated question: the full prompt the model saw and its full reply."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


class ResultDetailScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,enter", "dismiss", "Close")]

    def __init__(self, row: dict) -> None:
        super().__init__()
        self.row = row

    def compose(self) -> ComposeResult:
        row = self.row
        head = Text()
        head.append(f"#{row.get('index', '?')} {row.get('subject', '')}", style="bold")
        head.append(f"  gold {row.get('gold', '-')}  predicted {row.get('pred') or 'none'}  ")
        head.append("✓ correct" if row.get("correct") else "✗ wrong", style="green" if row.get("correct") else "red")
        if row.get("new_tokens") is not None:
            head.append(f"  {row['new_tokens']} new tokens", style="dim")
        with Vertical(id="result-detail", classes="dialog"):
            yield Static(head, classes="screen-title")
            with VerticalScroll(id="prompt", classes="text-box"):
                yield Static(Text(str(row.get("prompt") or row.get("question") or "")))
            with VerticalScroll(id="reply", classes="text-box"):
                yield Static(Text(str(row.get("output") or "")))
            yield Static("Esc closes · Tab moves between prompt and reply", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#prompt").border_title = "Prompt"
        self.query_one("#reply").border_title = "Reply"
