"""One run read from disk: its figures and config beside its loss chart or its results table."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Static

from core.distributed import rank_errors
from core.runs import REPORT
from tui import format as fmt
from tui.format import STATUS_STYLES
from tui.kinds import view_class
from tui.messages import ReportRequested, RunsLoaded
from tui.runinfo import RunInfo, figures, flatten
from tui.widgets.key_value_table import KeyValueTable


def run_title(run: RunInfo) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(run.name, style="bold").append("  ")
    text.append(run.status, style=STATUS_STYLES.get(run.status, ""))
    text.append(f"  {fmt.duration(run.duration)}  ").append(f"{run.kind}, started {fmt.timestamp(run.started)}", style="dim")
    return text


class RunScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,q", "app.pop_screen", "Back"),
        Binding("o", "open_report", "Report"),
    ]

    def __init__(self, run: RunInfo) -> None:
        super().__init__()
        self.run = run
        # The kind's view (tui/kinds/), the one its live tab shows: a chart, a results table; a kind without one
        # shows figures and config only.
        self.view = view_class(run.kind)
        # A results table takes the keys; else the config does (a chart takes none). Unset, the screen would
        # inherit the app's "#hardware-tab" and the arrow keys would move nothing.
        self.AUTO_FOCUS = "#results" if self.view is not None and self.view.takes_keys else "#config"

    def compose(self) -> ComposeResult:
        yield Static(run_title(self.run), classes="screen-title")
        with Horizontal(id="run-body"):
            with Vertical(id="run-side"):
                yield Static(id="figures")
                yield Static(id="run-error")
                yield KeyValueTable(("key", "value"), key_share=0.5, show_header=False, id="config")
            with Vertical(id="run-main"):
                if self.view is not None:
                    yield self.view(live=False, id="view")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#run-side").border_title = "Figures and config"
        text = Text()
        rows = figures(self.run.kind, self.run.summary) or [("status", self.run.status)]
        label_cells = max(len(label) for label, _ in rows) + 1
        for label, value in rows:
            text.append(f"{label:<{label_cells}}", style="dim").append(f"{value}\n")
        text.rstrip()
        self.query_one("#figures", Static).update(text)
        error = (self.run.summary or {}).get("error")
        lines = [str(error)] if error else []
        lines += [f"rank {rank}: {line}" for rank, line in sorted(rank_errors(self.run.path).items())]
        self.query_one("#run-error", Static).update(Text("\n".join(lines), style="red"))
        self.query_one("#run-error").display = bool(lines)
        config = flatten(self.run.config)
        self.query_one(KeyValueTable).set_rows([(key, value) for key, value in config.items() if key != "kind"])
        self.app.load_runs([self.run], self)

    @on(RunsLoaded)
    def _loaded(self, message: RunsLoaded) -> None:
        if self.view is not None:
            self.query_one("#view").show(message.progresses[0])

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "open_report":
            return True if (self.run.path / REPORT).exists() else None
        return True

    def action_open_report(self) -> None:
        self.post_message(ReportRequested(self.run.path / REPORT))
