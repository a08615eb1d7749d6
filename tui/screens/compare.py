"""Runs side by side: their figures, the config keys that differ, and their loss curves overlaid or their
answers question by question (several adapters and their vote, say)."""

from __future__ import annotations

import string

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Static

from core.runlog import question_key
from tui.kinds.answers import AnswersProgress
from tui.kinds.training import TrainingProgress
from tui.messages import RunsLoaded
from tui.runinfo import RunInfo, config_diffs, figures, flatten
from tui.widgets.answers_table import AnswersTable
from tui.widgets.key_value_table import KeyValueTable
from tui.widgets.loss_chart import LossChart

LABEL_STYLES = ("bold cyan", "bold magenta", "bold green", "bold yellow", "bold blue", "bold red")


class CompareScreen(Screen[None]):
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Back")]
    AUTO_FOCUS = "#diff"  # screens would inherit the app's "#hardware-tab", which is not here: nothing would scroll

    def __init__(self, *runs: RunInfo) -> None:
        super().__init__()
        self.runs = list(runs)
        self.labels = list(string.ascii_uppercase[: len(self.runs)])
        from core.kinds import get

        # Runs that answered questions (eval, vote, fine-tune) compare answer by answer; others by loss curves.
        self.answers = all((get(r.kind) is not None and get(r.kind).results) for r in self.runs)

    def compose(self) -> ComposeResult:
        title = Text(no_wrap=True, overflow="ellipsis")
        for i, (label, run) in enumerate(zip(self.labels, self.runs)):
            if i:
                title.append("   vs   ", style="dim")
            title.append(f"{label} ", style=LABEL_STYLES[i % len(LABEL_STYLES)]).append(run.name)
        yield Static(title, classes="screen-title")
        with Horizontal(id="compare-body"):
            yield KeyValueTable(("", *self.labels), id="diff")
            if self.answers:
                yield AnswersTable(self.labels, id="overlay")
            else:
                yield LossChart(id="overlay", empty_text="no loss curves to overlay")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        figs = [dict(figures(run.kind, run.summary)) for run in self.runs]
        rows: list[tuple] = [(Text("figures", style="bold"), *[""] * len(self.runs)),
                             ("status", *[run.status for run in self.runs])]
        for label in dict.fromkeys(k for f in figs for k in f):
            rows.append((label, *[f.get(label, "-") for f in figs]))
        diff = config_diffs([run.config for run in self.runs])
        keys = set().union(*(flatten(run.config) for run in self.runs))
        rows.append((Text(f"config: {len(diff)} differ, {len(keys) - len(diff)} same", style="bold"), *[""] * len(self.runs)))
        rows += [(key, *map(str, values)) for key, values in diff]
        self.query_one(KeyValueTable).set_rows(rows)
        self.app.load_runs(self.runs, self)

    @on(RunsLoaded)
    def _loaded(self, message: RunsLoaded) -> None:
        if self.answers:
            self.query_one(AnswersTable).show([
                {question_key(row): row for row in p.rows.values()} if isinstance(p, AnswersProgress) else {}
                for p in message.progresses])
            return
        chart = self.query_one(LossChart)
        for label, progress in zip(self.labels, message.progresses):
            if isinstance(progress, TrainingProgress):
                chart.add_loss(progress.losses, series=f"{label} train")
                chart.add_eval(progress.eval_points, series=f"{label} eval")
        chart.flush()
