"""What the tabs that train share: a live loss chart (train and held-out), steps, rate and ETA, losses at the end."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Static

from tui import format as fmt
from tui.tabs.job_tab import JobTab
from tui.widgets.loss_chart import LossChart


class TrainingTab(JobTab):
    """A job tab whose progress has losses, eval points, steps and tokens/s (PretrainProgress or a subclass)."""

    def new_progress(self, run_dir):
        self._charted = (0, 0)  # how many train and eval points the chart already has
        return self.progress_class(run_dir=run_dir)

    def compose_live(self) -> ComposeResult:
        yield LossChart(id="chart")

    @classmethod
    def compose_run_view(cls) -> ComposeResult:
        yield LossChart(id="chart", empty_text="no loss recorded")

    @classmethod
    def show_run(cls, screen, progress) -> None:
        chart = screen.query_one(LossChart)
        chart.add_loss(progress.losses)
        chart.add_eval(progress.eval_points)
        chart.flush()

    def reset_live(self) -> None:
        self.query_one(LossChart).clear()

    def render_live(self) -> None:
        p = self.progress
        chart = self.query_one(LossChart)
        n_train, n_eval = self._charted
        chart.add_loss(p.losses[n_train:])
        chart.add_eval(p.eval_points[n_eval:])
        self._charted = (len(p.losses), len(p.eval_points))
        chart.flush()
        chart.display = bool(p.losses) or not p.finished  # a run that failed before training needs the room
        self.set_progress(*self.progress_counts())
        self.query_one("#stats", Static).update(" · ".join(self.stats_parts()))

    def progress_counts(self) -> tuple[int | None, int]:
        """(total, done) for the progress bar."""
        return self.progress.total_steps, self.progress.step

    def stats_parts(self) -> list[str]:
        """The figures of the line under the progress bar."""
        p = self.progress
        parts = [f"step {p.step:,}/{p.total_steps:,}" if p.total_steps else f"step {p.step:,}"]
        if p.epochs:
            parts.append(f"epoch {max(1, p.epoch)}/{p.epochs}")
        if p.loss is not None:
            parts.append(f"loss {p.loss:.3f}")
        parts.append(fmt.rate(p.tokens_per_s))
        if p.world_size > 1:
            parts.append(f"{p.world_size} processes")
        if not p.finished:
            parts.append(f"ETA {fmt.duration(p.eta())}")
        return parts

    def outcome_figures(self) -> list[tuple[str, str]]:
        summary = self.progress.summary or {}
        figures = []
        final = summary.get("final_loss", self.progress.loss)
        if isinstance(final, (int, float)):
            figures.append(("final loss", f"{final:.3f}"))
        eval_loss = summary.get("eval_loss", self.progress.eval_loss)
        if isinstance(eval_loss, (int, float)):
            figures.append(("eval loss", f"{eval_loss:.3f}"))
        return figures
