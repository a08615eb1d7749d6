"""Asked on quit while jobs run: stop them, leave them running, or stay."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class QuitScreen(ModalScreen[str | None]):
    """Dismisses with "stop", "leave", or None to cancel."""

    BINDINGS = [
        Binding("s", "choose('stop')", "Stop jobs and quit"),
        Binding("l", "choose('leave')", "Leave running"),
        Binding("escape,c", "choose('')", "Cancel"),
    ]

    def __init__(self, running: list[str]) -> None:
        super().__init__()
        self.running = running

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog", classes="dialog"):
            names = "\n".join(f"  • {name}" for name in self.running)
            noun = "A job is" if len(self.running) == 1 else f"{len(self.running)} jobs are"
            yield Static(f"{noun} still running:\n{names}\n\n"
                         "Stop: each finishes its current step and saves status 'stopped'. "
                         "Leave: each carries on; reopen llmlab to follow it again.", id="dialog-text")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Stop and quit (s)", id="stop", variant="error", compact=True)
                yield Button("Leave running (l)", id="leave", variant="primary", compact=True)
                yield Button("Cancel (esc)", id="cancel", compact=True)

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice or None)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss({"stop": "stop", "leave": "leave"}.get(event.button.id or ""))
