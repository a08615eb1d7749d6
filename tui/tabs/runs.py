"""The Runs tab: every run folder with its status and headline figure; open one, or compare two."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Static

from tui import format as fmt
from tui.format import STATUS_STYLES
from tui.messages import ChatRequested, ComparisonRequested, RunRequested
from tui.runinfo import RunInfo

WIDE = 100  # below this many columns the table drops its kind and start-time columns
HINT = "Enter opens a run · m marks runs (up to 6) · c compares them · r reloads"
MAX_MARKED = 6  # several adapters and their vote side by side; more columns would not fit 80 cells


class RunsTab(Vertical):
    """A table of RunInfo rows, refilled whenever the app posts a fresh scan."""

    BINDINGS = [
        Binding("o", "open", "Open"),
        Binding("m", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("r", "reload", "Reload"),
        Binding("t", "talk", "Talk"),
    ]

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.runs: dict[str, RunInfo] = {}
        self.marked: list[str] = []
        self._wide: bool | None = None
        self._order: list[str] = []

    def compose(self) -> ComposeResult:
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static(HINT, id="runs-hint", classes="hint")

    def on_resize(self) -> None:
        wide = self.size.width >= WIDE
        if wide != self._wide:
            self._wide = wide
            self._rebuild()

    def show_runs(self, runs: list[RunInfo]) -> None:
        self.runs = {str(r.path): r for r in runs}
        self.marked = [k for k in self.marked if k in self.runs]
        self._rebuild()

    def _rebuild(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        current = None
        if table.row_count and table.cursor_row < table.row_count:
            current = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        table.clear(columns=True)
        columns = ["", "run", "kind", "status", "started", "time", "result"]
        if not self._wide:
            columns = ["", "run", "status", "time", "result"]
        for name in columns:
            table.add_column(name, key=name or "mark")
        self._order = []
        for key, run in self.runs.items():
            cells = {
                "": Text("●", style="bold cyan") if key in self.marked else "",
                "run": run.name,
                "kind": run.kind,
                "status": Text(run.status, style=STATUS_STYLES.get(run.status, "")),
                "started": fmt.timestamp(run.started)[5:],
                "time": fmt.duration(run.duration),
                "result": run.headline,
            }
            table.add_row(*(cells[c] for c in columns), key=key)
            self._order.append(key)
        if current in self._order:
            table.move_cursor(row=self._order.index(current))
        if not self.runs:
            self.query_one("#runs-hint", Static).update("No runs yet: start one in the Pretrain or Evaluate tab.")
        else:
            self.query_one("#runs-hint", Static).update(HINT)

    def selected(self) -> RunInfo | None:
        table = self.query_one("#runs-table", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        return self.runs.get(key)

    def action_mark(self) -> None:
        run = self.selected()
        if run is None:
            return
        key = str(run.path)
        if key in self.marked:
            self.marked.remove(key)
        else:
            self.marked = (self.marked + [key])[-MAX_MARKED:]
        self._rebuild()

    def action_compare(self) -> None:
        if len(self.marked) < 2:
            members = ensemble_runs(self.selected())
            if members:  # a fine-tuning ensemble: its adapters' answers and their vote, side by side
                self.post_message(ComparisonRequested(members))
                return
            self.notify("Mark two or more runs with m first, or select a fine-tuning ensemble.", severity="warning")
            return
        self.post_message(ComparisonRequested([self.runs[key] for key in self.marked]))

    def action_open(self) -> None:
        run = self.selected()
        if run is not None:
            self.post_message(RunRequested(run))

    def action_talk(self) -> None:
        run = self.selected()
        if run is not None:
            self.post_message(ChatRequested(run))

    def action_reload(self) -> None:
        self.app.scan_runs()

    @on(DataTable.RowSelected, "#runs-table")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()


def ensemble_runs(run: RunInfo | None) -> list[RunInfo]:
    """A `finetune --ensemble` run's adapters (members/member-k/, each a run folder with its test answers) and the run
    itself, whose results are their vote; [] for any other run. At most MAX_MARKED columns: the first adapters."""
    from tui.runinfo import read_run

    if run is None or not ((run.summary or {}).get("ensemble") or {}).get("members"):
        return []
    folders = sorted((run.path / "members").glob("member-*"), key=lambda p: int(p.name.rsplit("-", 1)[-1]))
    members = [info for info in map(read_run, folders) if info is not None and (info.path / "results.jsonl").exists()]
    return members[:MAX_MARKED - 1] + [run] if members else []
