"""Two runs side by side: their figures, the config keys that differ, and their loss curves overlaid."""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Static

from tui.messages import RunsLoaded
from tui.progress import PretrainProgress
from tui.runinfo import RunInfo, config_diff, figures, flatten
from tui.widgets.key_value_table import KeyValueTable
from tui.widgets.loss_chart import LossChart


class CompareScreen(Screen[None]):
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back")]
    AUTO_FOCUS = "#diff"  # screens would inherit the app's "#hardware-tab", which is not here: nothing would scroll

    def __init__(self, a: RunInfo, b: RunInfo) -> None:
        super().__init__()
        self.a, self.b = a, b

    def compose(self) -> ComposeResult:
        title = Text(no_wrap=True, overflow="ellipsis")
        title.append("A ", style="bold cyan").append(self.a.name).append("   vs   ", style="dim")
        title.append("B ", style="bold magenta").append(self.b.name)
        yield Static(title, classes="screen-title")
        with Horizontal(id="compare-body"):
            yield KeyValueTable(("", "A", "B"), id="diff")
            yield LossChart(id="overlay", empty_text="no loss curves to overlay")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        fig_a, fig_b = dict(figures(self.a.kind, self.a.summary)), dict(figures(self.b.kind, self.b.summary))
        rows: list[tuple] = [(Text("figures", style="bold"), "", ""), ("status", self.a.status, self.b.status)]
        for label in list(fig_a) + [k for k in fig_b if k not in fig_a]:
            rows.append((label, fig_a.get(label, "-"), fig_b.get(label, "-")))
        diff = config_diff(self.a.config, self.b.config)
        same = len(set(flatten(self.a.config)) | set(flatten(self.b.config))) - len(diff)
        rows.append((Text(f"config: {len(diff)} differ, {same} same", style="bold"), "", ""))
        rows += [(key, str(va), str(vb)) for key, va, vb in diff]
        self.query_one(KeyValueTable).set_rows(rows)
        self.app.load_runs([self.a, self.b], self)

    @on(RunsLoaded)
    def _loaded(self, message: RunsLoaded) -> None:
        chart = self.query_one(LossChart)
        for label, progress in zip("AB", message.progresses):
            if isinstance(progress, PretrainProgress):
                chart.add_loss(progress.losses, series=f"{label} train")
                chart.add_eval(progress.eval_points, series=f"{label} eval")
        chart.flush()
