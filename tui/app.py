"""llmlab's Textual app: Hardware, one tab per registered job kind (tui/tabs/__init__.py), and Runs.

Jobs run as separate processes; nothing here names a kind, so a new kind's tab needs only its
module and its line in the tab registry.

Workers read (hardware, run folders, job files) and post messages; the handlers here own all
state and hand it to the tabs, which redraw on their own 0.5 s timers. Every worker belongs to
this App, so one `Worker.StateChanged` handler turns any worker error into a notification.
"""

from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import Callable

from textual import events, on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widgets import Footer, TabbedContent, TabPane
from textual.worker import Worker, WorkerState, get_current_worker

from core.runlog import RunFollower, RunsReader
from core.runs import runs_root as default_runs_root
from tui.hardware import HardwareSource, LiveHardware
from tui.jobs import FORCE_AFTER, Job, Launcher, LaunchError, find_running_jobs, launch, tail_lines
from tui.kinds import load_progress
from tui.kinds.base import final_status
from tui.messages import (
    ChatRequested,
    ComparisonRequested,
    EventsRead,
    HardwareSampled,
    JobExited,
    JobRequested,
    PreviewRequested,
    ReportRequested,
    ResultRequested,
    ResultsRead,
    RunningJobsFound,
    RunRequested,
    RunsLoaded,
    RunsScanned,
    StopRequested,
)
from tui.options import plan_line
from tui.runinfo import RunInfo, scan_runs
from tui.tabs import job_tab_classes
from tui.tabs.hardware import HardwareTab
from tui.tabs.job_tab import JobTab
from tui.tabs.runs import RunsTab

TABS = Binding.Group("Tabs", compact=True)
NARROW = 100  # columns; below this the job tabs show form or live view, not both


def tab_panes() -> list[tuple[str, str]]:
    """(pane id, title) of every tab in order: Hardware, the registered job tabs, Runs."""
    return [("hardware", "Hardware"), *((cls.kind, cls.title) for cls in job_tab_classes()), ("runs", "Runs")]


def _tab_bindings() -> list[Binding]:
    return [Binding(str(n), f"show_tab('{pane}')", title, group=TABS) for n, (pane, title) in enumerate(tab_panes(), 1)]


class LlmlabApp(App[None]):
    """The terminal workbench. Every outside dependency is a constructor argument so tests can fake it.

    hardware: anything with `sample() -> HardwareSample` (default: this machine via psutil and NVML).
    clock: returns unix time; used for the elapsed time of a running job.
    reader: the run-folder reader (core.runlog.RunsReader): scans the runs folder, reads one run, follows a
        live one. runs_root: the folder it reads when no reader is given (default: $LLMLAB_RUNS_DIR or ./runs).
    launcher: builds a job's command line (default: `python -m core <kind> ...`).
    sample_seconds: hardware refresh period; None samples nothing (tests post HardwareSampled).
    poll_seconds: how often a job's files are read.
    attach_running: look for jobs left running by an earlier session and follow them.
    chat_factory: run folder -> an object with reply(prompt, on_text, max_new_tokens) (default: its model).
    """

    CSS_PATH = ["app.tcss"]
    TITLE = "llmlab"
    ENABLE_COMMAND_PALETTE = False
    AUTO_FOCUS = "#hardware-tab"
    BINDINGS = [
        *_tab_bindings(),
        Binding("s", "job('start')", "Start"),
        Binding("x", "job('stop')", "Stop"),
        Binding("d", "job('demo')", "Demo"),
        Binding("f", "job('toggle_form')", "Form/live"),
        Binding("o", "job('open_report')", "Report"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "quit", "Quit"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    def __init__(
        self,
        *,
        hardware: HardwareSource | None = None,
        clock: Callable[[], float] = time.time,
        reader: RunsReader | None = None,
        runs_root: Path | None = None,
        launcher: Launcher | None = None,
        sample_seconds: float | None = 1.0,
        poll_seconds: float = 0.25,
        attach_running: bool = True,
        chat_factory: Callable | None = None,
        planner: Callable[[str, list[str]], str] | None = plan_line,
    ) -> None:
        super().__init__()
        # Absolute, so the paths a scan lists match the run folders jobs are launched into.
        # Absolute, so the paths a scan lists match the run folders jobs are launched into.
        self.reader = reader or RunsReader(Path(runs_root) if runs_root is not None else default_runs_root())
        self.runs_root = self.reader.root
        self.hardware = hardware if hardware is not None else LiveHardware(self.runs_root)
        self.clock = clock
        self.launcher = launcher or Launcher()
        self.sample_seconds = sample_seconds
        self.poll_seconds = poll_seconds
        self.attach_running = attach_running
        self.chat_factory = chat_factory
        self.planner = planner  # (kind, command-line options) -> one line of memory plan for the forms; None: no line
        self.jobs: dict[Path, Job] = {}
        self._follow_workers: dict[Worker, Job] = {}
        self._focus_after_switch: str | None = None

    # ----------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        panes = tab_panes()
        with TabbedContent(initial="hardware"):
            with TabPane(f"1 {panes[0][1]}", id="hardware"):
                yield HardwareTab(id="hardware-tab")
            for n, cls in enumerate(job_tab_classes(), 2):
                with TabPane(f"{n} {cls.title}", id=cls.kind):
                    yield cls(self.clock, id=f"{cls.kind}-tab")
            with TabPane(f"{len(panes)} {panes[-1][1]}", id="runs"):
                yield RunsTab(id="runs-tab")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.set_class(self.size.width < NARROW, "-narrow")
        if self.sample_seconds:
            self._sample_hardware()
        if self.attach_running:
            self._find_running_jobs()
        self.set_interval(2.0, self._scan_if_visible)
        self.scan_runs()

    def on_resize(self, event: events.Resize) -> None:
        # event.size: this handler runs before App's own, so self.size is still the old size here.
        self.set_class(event.size.width < NARROW, "-narrow")

    def job_tab(self, kind: str) -> JobTab | None:
        """The tab of job kind `kind`, or None when that kind has no tab."""
        for tab in self.query(JobTab):
            if tab.kind == kind:
                return tab
        return None

    def tab_for(self, run_dir: Path) -> JobTab | None:
        """The job tab that shows `run_dir`, if any (none while the app shuts down)."""
        if not self.is_running:  # shutting down: the tabs' widgets may already be gone
            return None
        for tab in self.query(JobTab):
            if tab.run_dir == run_dir:
                return tab
        return None

    # ----------------------------------------------------------------- actions

    def action_show_tab(self, tab: str) -> None:
        while len(self.screen_stack) > 1:  # a number key from a run, report or dialog goes back to the tabs
            self.pop_screen()
        tabs = self.query_one(TabbedContent)
        if tabs.active == tab:
            self._focus_tab(tab)
        else:
            self._focus_after_switch = tab  # a pane can take focus only once it is displayed
            tabs.active = tab

    def _focus_tab(self, tab: str) -> None:
        self.query_one("#runs-table" if tab == "runs" else f"#{tab}-tab").focus()

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == self._focus_after_switch:
            self._focus_after_switch = None
            self.call_after_refresh(self._focus_tab, event.pane.id)
        if event.pane.id == "runs":
            self.scan_runs()
        self.refresh_bindings()

    def active_job_tab(self) -> JobTab | None:
        return self.job_tab(self.query_one(TabbedContent).active)

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action != "job":
            return True
        tab = self.active_job_tab()
        return False if tab is None else tab.action_state(parameters[0])

    def action_job(self, action: str) -> None:
        """Run a job tab's action (start, stop, demo, ...) on whichever job tab is showing."""
        tab = self.active_job_tab()
        if tab is not None and tab.action_state(action):
            getattr(tab, f"action_{action}")()

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        self.push_screen(HelpScreen(job_tab_classes()))

    async def action_quit(self) -> None:
        from tui.screens.quit import QuitScreen

        if isinstance(self.screen, QuitScreen):  # q or ctrl+q again while it asks: the dialog decides
            return
        running = [job for job in self.jobs.values() if job.is_running()]
        if not running:
            self.exit()
            return

        def chosen(choice: str | None) -> None:
            if choice == "stop":
                for job in running:
                    job.stop()
            if choice in ("stop", "leave"):
                self.exit()

        self.push_screen(QuitScreen([job.run_dir.name for job in running]), chosen)

    # ----------------------------------------------------------------- jobs

    @on(JobRequested)
    def _job_requested(self, message: JobRequested) -> None:
        try:
            job = launch(message.kind, message.options, self.runs_root, self.launcher, message.out)
        except LaunchError as exc:
            self.job_tab(message.kind).launch_failed()
            self.notify(str(exc), title=f"Cannot start {message.kind}", severity="error", timeout=10)
            return
        self.attach_job(job)
        self.scan_runs()

    def attach_job(self, job: Job, follow: bool = True) -> None:
        """Show `job` in its tab and, with `follow`, read its files as they grow."""
        self.jobs[job.run_dir] = job
        tab = self.job_tab(job.kind)
        if tab is not None:
            tab.attach(job.run_dir, status="starting" if job.process is not None else "running")
        if follow:
            worker = self.run_worker(
                partial(self._follow, job), thread=True, exit_on_error=False, group="follow",
                description=f"Following {job.run_dir.name}",
            )
            self._follow_workers[worker] = job

    def _follow(self, job: Job) -> None:
        """Thread worker: post what the job writes until it exits (or the app closes)."""
        worker = get_current_worker()
        follower = self.reader.follow(job.run_dir)
        while not worker.is_cancelled:
            self._post_reads(job, follower)
            if job.returncode() is not None:
                break
            _wait(worker, self.poll_seconds)
        else:
            return
        while self._post_reads(job, follower):  # lines written between the last read and the exit
            pass
        self.post_message(JobExited(job.run_dir, job.returncode(), self.reader.folder(job.run_dir).summary(),
                                    tail_lines(job.log_path)))

    def _post_reads(self, job: Job, follower: RunFollower) -> bool:
        events, rows = follower.poll()
        if events:
            self.post_message(EventsRead(job.run_dir, events))
        if rows:
            self.post_message(ResultsRead(job.run_dir, rows))
        return bool(events or rows)

    @on(EventsRead)
    def _events_read(self, message: EventsRead) -> None:
        tab = self.tab_for(message.run_dir)
        if tab is not None:
            tab.apply_events(message.events)

    @on(ResultsRead)
    def _results_read(self, message: ResultsRead) -> None:
        tab = self.tab_for(message.run_dir)
        if tab is not None:
            tab.apply_results(message.rows)

    @on(JobExited)
    def _job_exited(self, message: JobExited) -> None:
        self.jobs.pop(message.run_dir, None)
        if not self.is_running:  # the job ended as the app closed: nothing left to show it in
            return
        tab = self.tab_for(message.run_dir)
        if tab is not None:
            tab.job_exited(message.returncode, message.summary, message.log_tail)
            status, error = tab.progress.status, tab.progress.error
        else:
            status = final_status(message.summary, message.returncode)
            error = (message.summary or {}).get("error")
        if status == "failed":
            where = " (its job.log is shown in its tab)" if tab is not None else ""
            self.notify(f"{_shorten(error or 'the job failed')}{where}", title=f"{message.run_dir.name} failed",
                        severity="error", timeout=10)
        else:
            self.notify(f"{message.run_dir.name} {status}", title="Job finished")
        self.scan_runs()

    @on(StopRequested)
    def _stop_requested(self, message: StopRequested) -> None:
        job = self.jobs.get(message.run_dir)
        outcome = job.stop() if job is not None else None
        name = message.run_dir.name
        if outcome == "asked":
            tab = self.tab_for(message.run_dir)
            if tab is not None:
                tab.set_stopping()
            self.notify(f"Asked {name} to stop after its current step.", title="Stopping")
        elif outcome == "waiting":
            wait = FORCE_AFTER - (time.monotonic() - job.stop_requested)
            self.notify(f"{name} is finishing its current step. To end it without waiting, press x again "
                        f"in {wait:.0f} s.", title="Already stopping")
        elif outcome == "forced":
            self.notify(f"Ended {name} without waiting for its step (SIGTERM).", title="Stopping", severity="warning")

    @work(thread=True, exit_on_error=False, group="jobs", description="Looking for jobs still running")
    def _find_running_jobs(self) -> None:
        jobs = find_running_jobs(self.reader)
        if jobs:
            self.post_message(RunningJobsFound(jobs))

    @on(RunningJobsFound)
    def _running_jobs_found(self, message: RunningJobsFound) -> None:
        """Follow the newest running job of each kind in its tab; a tab shows one job, so others are only listed."""
        followed = []
        for job in sorted(message.jobs, key=lambda j: j.run_dir.name, reverse=True):
            tab = self.job_tab(job.kind)
            if job.run_dir not in self.jobs and tab is not None and not tab.progress.active:
                self.attach_job(job)
                followed.append(job.run_dir.name)
        others = [job.run_dir.name for job in message.jobs if job.run_dir.name not in followed]
        lines = [f"Following {', '.join(followed)}"] if followed else []
        if others:
            lines.append(f"Also running, listed in the Runs tab: {', '.join(others)}")
        if lines:
            self.notify("\n".join(lines), title="Jobs still running")

    # ----------------------------------------------------------------- hardware and runs

    @work(thread=True, exit_on_error=False, group="hardware", description="Reading GPUs, CPU and memory")
    def _sample_hardware(self) -> None:
        worker = get_current_worker()
        while not worker.is_cancelled:
            self.post_message(HardwareSampled(self.hardware.sample()))
            _wait(worker, self.sample_seconds or 1.0)

    @on(HardwareSampled)
    def _hardware_sampled(self, message: HardwareSampled) -> None:
        for tab in self.query(HardwareTab):  # a reading can still arrive while the app shuts down
            tab.show(message.sample)

    def scan_runs(self) -> None:
        self._scan_runs()

    @work(thread=True, exclusive=True, exit_on_error=False, group="runs", description="Reading the runs folder")
    def _scan_runs(self) -> None:
        runs = scan_runs(self.reader)
        if not get_current_worker().is_cancelled:
            self.post_message(RunsScanned(runs))

    def _scan_if_visible(self) -> None:
        if self.query_one(TabbedContent).active == "runs" and self.screen is self.screen_stack[0]:
            self.scan_runs()

    @on(RunsScanned)
    def _runs_scanned(self, message: RunsScanned) -> None:
        for run in message.runs:
            if run.path in self.jobs and self.jobs[run.path].is_running():
                run.status = "running"
        for tab in self.query(RunsTab):  # a scan can still arrive while the app shuts down
            tab.show_runs(message.runs)

    # ----------------------------------------------------------------- screens, as tabs and widgets ask for them

    @on(RunRequested)
    def open_run(self, message: RunRequested) -> None:
        """Enter on a run: its live tab when it is running, else its figures read from disk."""
        tab = self.tab_for(message.run.path)
        if tab is not None and tab.progress.active:
            self.action_show_tab(tab.kind)
            return
        from tui.screens.run_detail import RunScreen

        self.push_screen(RunScreen(message.run))

    @on(ChatRequested)
    def open_chat(self, message: ChatRequested) -> None:
        """The Chat screen for a run that holds a model (a pretraining run's model/, a fine-tune's adapter)."""
        from core.errors import UsageError
        from tui.screens.chat import ChatScreen

        try:
            self.push_screen(ChatScreen.for_run(message.run.path, self.chat_factory))
        except UsageError as exc:
            self.notify(str(exc), title="Nothing to talk to", severity="warning")

    @on(ComparisonRequested)
    def _compare(self, message: ComparisonRequested) -> None:
        from tui.screens.compare import CompareScreen

        self.push_screen(CompareScreen(*message.runs))

    @on(ReportRequested)
    def _open_report(self, message: ReportRequested) -> None:
        from tui.screens.report import ReportScreen

        self.push_screen(ReportScreen(message.path))

    @on(ResultRequested)
    def _open_result(self, message: ResultRequested) -> None:
        from tui.screens.result_detail import ResultDetailScreen

        self.push_screen(ResultDetailScreen(message.row))

    @on(PreviewRequested)
    def _open_preview(self, message: PreviewRequested) -> None:
        from tui.screens.preview import PreviewScreen

        self.push_screen(PreviewScreen(message.data, message.tokenizer, message.block_size, message.note))

    def load_runs(self, runs: list[RunInfo], target) -> None:
        """Read runs from disk in a worker and post RunsLoaded to `target` (a screen)."""
        names = " and ".join(run.name for run in runs)
        self.run_worker(partial(self._load_runs, runs, target), thread=True, exit_on_error=False,
                        group="load", description=f"Reading {names}")

    def _load_runs(self, runs: list[RunInfo], target) -> None:
        progresses = [load_progress(run) for run in runs]
        target.post_message(RunsLoaded(progresses))

    # ----------------------------------------------------------------- errors

    @on(Worker.StateChanged)
    def _worker_state_changed(self, event: Worker.StateChanged) -> None:
        """Any worker that fails becomes a notification; a job's also shows the end of its job.log."""
        if event.state not in (WorkerState.ERROR, WorkerState.SUCCESS, WorkerState.CANCELLED):
            return
        job = self._follow_workers.pop(event.worker, None)
        if event.state != WorkerState.ERROR:
            return
        text = f"{type(event.worker.error).__name__}: {event.worker.error}"
        if job is not None:
            text += "\n" + "\n".join(tail_lines(job.log_path, 5))
        self.notify(text, title=event.worker.description or "A background task failed", severity="error",
                    timeout=15)


def _wait(worker: Worker, seconds: float) -> None:
    """Sleep in short slices so a cancelled thread worker ends within 50 ms."""
    deadline = time.monotonic() + seconds
    while not worker.is_cancelled and time.monotonic() < deadline:
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


def _shorten(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_app() -> None:
    LlmlabApp().run()
