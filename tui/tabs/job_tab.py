"""What every job tab shares: a form, the live view of one job (its kind's view, tui/kinds/), a throttled redraw."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Log, ProgressBar, Select, Static

from core.runs import REPORT
from tui import format as fmt
from tui.format import STATUS_STYLES
from tui.kinds import progress_class, view_class
from tui.kinds.base import JobProgress
from tui.messages import JobRequested, ReportRequested, StopRequested
from tui.options import Field, FormError, command_options
from tui.widgets.job_form import JobForm


class JobTab(Vertical, can_focus=True):
    """A form on the left and the attached job's live view on the right (stacked when narrow)."""

    # s, x, d, f and o are App bindings that call this tab's actions, so they work wherever focus is.
    BINDINGS = [Binding("escape", "focus_tab", "Leave form", show=False)]

    kind = ""                           # the core kind this tab runs (core/kinds.py); its view is tui/kinds/<kind>.py
    title = ""                          # the tab's name, e.g. "Pretrain"
    fields: tuple[Field, ...] = ()
    demo_values: dict = {}              # what the Demo preset shows in the form (the engine's --demo values)
    extra_presets: tuple = ()           # more Demo presets (tui.options.Preset), e.g. `--demo zh`
    help = ""                           # a sentence of its own for the help screen

    def __init__(self, clock: Callable[[], float], id: str | None = None) -> None:
        super().__init__(id=id, classes="job-tab -form-shown -idle")
        self.clock = clock
        self.progress: JobProgress = self.new_progress(None)
        self.dirty = False
        # Set from Start until the app attaches the job (or says it could not start): a second s
        # pressed before the JobRequested message is handled must not launch a second job.
        self.start_pending = False
        self._was_active = False
        self._bar_width = -1
        self._plan_timer = None  # the pending recompute of the plan line (fields changed less than 0.5 s ago)

    # ----------------------------------------------------------------- building

    def new_progress(self, run_dir: Path | None) -> JobProgress:
        return progress_class(self.kind)(run_dir=run_dir)

    @property
    def view(self):
        """The kind's view widget in the live column (the same class the run screen shows)."""
        return self.query_one("#view")

    def compose(self) -> ComposeResult:
        with Vertical(id="form-column"):
            yield JobForm(self.fields, self.demo_values, id="form", presets=self.extra_presets)
            with Horizontal(id="buttons"):
                yield Button("Start", id="start", variant="success", compact=True)
                yield Button("Stop", id="stop", variant="error", compact=True, disabled=True)
            yield Static("s or Enter starts · d Demo preset · Tab next field · Esc leaves the form",
                         classes="hint form-hint")
            if self._planner() is not None:
                yield Static("plan: …", id="plan", classes="hint form-hint plan")
        with Vertical(id="live"):
            yield Static(id="status", classes="status")
            with Vertical(id="live-body"):
                yield ProgressBar(id="progress", show_eta=False)
                yield Static(id="stats", classes="stats")
                view = view_class(self.kind)
                if view is not None:
                    yield view(live=True, id="view")
                yield Static(id="outcome", classes="outcome")
                yield Log(id="log", max_lines=500, classes="job-log")

    def on_mount(self) -> None:
        self.set_interval(0.5, self.flush)
        self.query_one("#outcome").display = False
        self.render_status()
        self.schedule_plan()

    # ----------------------------------------------------------------- the memory plan under the form

    def _planner(self):
        from core.kinds import get

        registered = get(self.kind)
        return getattr(self.app, "planner", None) if registered is not None and registered.plan else None

    def schedule_plan(self) -> None:
        """Recompute the plan line half a second after the fields stop changing (off the UI thread: it reads files)."""
        if self._planner() is None:
            return
        if self._plan_timer is not None:
            self._plan_timer.stop()
        self._plan_timer = self.set_timer(0.5, self._start_plan)

    def _start_plan(self) -> None:
        form = self.query_one(JobForm)
        try:
            chosen = form.preset
            options, _ = command_options(self.fields, form.values(), chosen.values if chosen else None,
                                         chosen.args if chosen else ("--demo",), required=False)
        except FormError as error:
            self.query_one("#plan", Static).update(f"plan: {error}")
            return
        planner, kind = self._planner(), self.kind
        self.run_worker(lambda: self._show_plan(planner(kind, options)), thread=True, exclusive=True, group="plan")

    def _show_plan(self, line: str) -> None:
        from textual.worker import get_current_worker

        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self.query_one("#plan", Static).update, line)

    @on(Input.Changed)
    @on(Select.Changed)
    def _field_changed(self) -> None:
        self.schedule_plan()

    # ----------------------------------------------------------------- the attached job

    @property
    def run_dir(self) -> Path | None:
        return self.progress.run_dir

    def attach(self, run_dir: Path, status: str = "starting") -> None:
        """Show a new job from its first event; the form moves aside on narrow screens."""
        self.start_pending = False
        self.progress = self.new_progress(run_dir)
        self.progress.status = status
        self.remove_class("-idle")
        self.query_one("#log", Log).clear()
        self.query_one("#outcome").display = False
        self.view.reset()
        self.show_form(False)
        self.dirty = True
        self.flush()

    def apply_events(self, events: list[dict]) -> None:
        for event in events:
            self.progress.apply(event)
        self.dirty = True

    def apply_results(self, rows: list[dict]) -> None:
        """Answered questions (results.jsonl rows), for the kinds that write them."""
        if hasattr(self.progress, "add_rows"):
            self.progress.add_rows(rows)
            self.dirty = True

    def job_exited(self, returncode: int | None, summary: dict | None, log_tail: list[str]) -> None:
        self.progress.finish(returncode, summary, log_tail)
        self.dirty = True
        self.flush()
        self.app.refresh_bindings()

    def set_stopping(self) -> None:
        if self.progress.active:
            self.progress.status = "stopping"
            self.dirty = True
            self.flush()

    # ----------------------------------------------------------------- drawing

    def flush(self) -> None:
        """Apply what arrived since the last call to the widgets; runs on a 0.5 s timer."""
        self.render_status()
        if not self.dirty:
            return
        self.dirty = False
        lines = self.progress.take_new_logs()
        if lines:
            self.query_one("#log", Log).write_lines(lines)
        self.render_live()
        self.render_outcome()
        active = self.progress.active
        self.query_one("#start", Button).disabled = active
        self.query_one("#stop", Button).disabled = not active
        if active != self._was_active:
            self._was_active = active
            self.app.refresh_bindings()

    def render_live(self) -> None:
        p = self.progress
        self.view.show(p)
        self.set_progress(*p.counts())
        self.query_one("#stats", Static).update(" · ".join(p.stats_parts()))

    def on_resize(self) -> None:
        self.dirty = True  # widths changed: the next flush redraws everything

    def set_progress(self, total: int | None, done: int) -> None:
        """Fill the progress bar; a finished job with no known total shows an empty or full bar."""
        p = self.progress
        if total is None and p.finished:
            total, done = 1, int(p.status == "completed")
        bar = self.query_one("#progress", ProgressBar)
        if bar.size.width != self._bar_width:  # the bar rounds to half cells of the width it had when set
            self._bar_width = bar.size.width
            bar.update(total=total, progress=0)
        bar.update(total=total, progress=done if total else 0)

    def elapsed(self) -> float | None:
        p = self.progress
        if p.active and p.start_time is not None:
            return max(p.elapsed, self.clock() - p.start_time)
        return p.elapsed if p.start_time is not None or p.finished else None

    def render_status(self) -> None:
        p = self.progress
        text = Text(no_wrap=True, overflow="ellipsis")
        if p.run_dir is None:
            text.append("No run yet. ", style="bold")
            text.append("Fill in the form, then s or Enter starts it; d picks the Demo preset.", style="dim")
        else:
            text.append(f"● {p.status}", style=STATUS_STYLES.get(p.status, ""))
            text.append(f"  {p.run_dir.name}")
            if p.phase and p.active:
                text.append(f"  {p.phase}", style="cyan")
            text.append(f"  {fmt.duration(self.elapsed())}", style="dim")
        self.query_one("#status", Static).update(text)

    def render_outcome(self) -> None:
        p = self.progress
        outcome = self.query_one("#outcome", Static)
        if not p.finished:
            outcome.display = False
            return
        text = Text()
        style = STATUS_STYLES.get(p.status, "")
        text.append(f"{p.status} after {fmt.duration(p.elapsed)}", style=style)
        for label, value in p.outcome_figures():
            text.append(f" · {label} ", style="dim").append(value, style="bold")
        if p.run_dir is not None and (p.run_dir / REPORT).exists():
            text.append(" · report ", style="dim").append(f"{p.run_dir.name}/{REPORT}", style="underline")
            text.append(" (o)", style="dim")
        if p.status == "failed":
            text.append(f"\n{p.error or 'the job failed'}", style="red")
            for rank, line in sorted(p.rank_errors.items()):  # what each failed rank said itself
                text.append(f"\nrank {rank}: {line}", style="red")
            if p.log_tail:
                text.append("\njob.log:\n", style="dim")
                text.append("\n".join(p.log_tail[-8:]), style="dim")
        outcome.update(text)
        outcome.set_class(p.status == "failed", "-failed")
        outcome.display = True

    def show_form(self, shown: bool) -> None:
        self.set_class(shown, "-form-shown")
        self.set_class(not shown, "-live-shown")

    # ----------------------------------------------------------------- actions

    def action_state(self, action: str) -> bool | None:
        """Whether an action applies now: True, or None to show its key dimmed in the footer."""
        if action == "start":
            return None if self.progress.active or self.start_pending else True
        if action == "stop":
            return True if self.progress.active else None
        if action == "open_report":
            return True if self.run_dir is not None and (self.run_dir / REPORT).exists() else None
        return True

    def action_start(self) -> None:
        form = self.query_one(JobForm)
        try:
            chosen = form.preset
            options, out = command_options(self.fields, form.values(), chosen.values if chosen else None,
                                           chosen.args if chosen else ("--demo",))
        except FormError as error:
            form.mark_error(error)
            self.show_form(True)
            self.notify(str(error), title="Check the form", severity="warning")
            return
        form.mark_error(None)
        self.start_pending = True
        self.post_message(JobRequested(self.kind, options, out))

    def launch_failed(self) -> None:
        self.start_pending = False

    def action_stop(self) -> None:
        if self.run_dir is not None and self.progress.active:
            self.post_message(StopRequested(self.run_dir))

    def action_demo(self) -> None:
        form = self.query_one(JobForm)
        form.use_demo(not form.demo)
        self.show_form(True)

    def action_toggle_form(self) -> None:
        self.show_form(not self.has_class("-form-shown"))

    def action_focus_tab(self) -> None:
        self.focus()

    def action_open_report(self) -> None:
        if self.run_dir is not None:
            self.post_message(ReportRequested(self.run_dir / REPORT))

    @on(Button.Pressed, "#start")
    def _start_pressed(self) -> None:
        if self.action_state("start"):
            self.action_start()

    @on(Button.Pressed, "#stop")
    def _stop_pressed(self) -> None:
        self.action_stop()

    @on(JobForm.Submitted)
    def _form_submitted(self) -> None:
        if self.action_state("start"):
            self.action_start()
