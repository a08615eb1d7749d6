"""The kinds that train (pretrain, finetune): a loss curve, steps and tokens/s folded from events, and the chart.

`TrainingProgress` folds `plan`, `loss`, `eval` and `heartbeat` events; `LossView` draws its train
loss as a line and the held-out checks as points, in the live tab and on a run screen alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.app import ComposeResult
from textual.containers import Vertical

from core.runlog import EvalLoss, Event, Heartbeat, Loss, Plan, Start
from tui import format as fmt
from tui.kinds.base import JobProgress, eta
from tui.widgets.loss_chart import LossChart

PLAN_FIELDS = ("total_steps", "steps_per_epoch", "epochs", "n_params", "tokens_per_epoch")


@dataclass
class TrainingProgress(JobProgress):
    total_steps: int | None = None
    steps_per_epoch: int | None = None
    epochs: int | None = None
    n_params: int | None = None
    tokens_per_epoch: int | None = None
    step: int = 0
    epoch: int = 0
    loss: float | None = None
    eval_loss: float | None = None
    lr: float | None = None
    tokens_per_s: float | None = None
    losses: list = field(default_factory=list)  # (step, loss)
    eval_points: list = field(default_factory=list)  # (step, eval_loss)
    first_loss: tuple | None = None  # (elapsed, step) of the first loss event, where the rate is measured from

    def apply_event(self, event: Event) -> None:
        super().apply_event(event)
        if isinstance(event, (Start, Plan)):  # the engine announces the plan once the data is tokenized
            for key in PLAN_FIELDS:
                if event.get(key) is not None:
                    setattr(self, key, event.get(key))
        elif isinstance(event, Loss) and isinstance(event.loss, (int, float)):
            self.step = int(event.step if event.step is not None else self.step)
            self.epoch = int(event.epoch if event.epoch is not None else self.epoch)
            self.loss = float(event.loss)
            self.lr = event.lr if event.lr is not None else self.lr
            self.tokens_per_s = event.tokens_per_s if event.tokens_per_s is not None else self.tokens_per_s
            self.losses.append((self.step, self.loss))
            self.phase = "train"
            if self.first_loss is None:
                self.first_loss = (self.elapsed, self.step)
        elif isinstance(event, EvalLoss) and isinstance(event.eval_loss, (int, float)):
            self.eval_loss = float(event.eval_loss)
            self.eval_points.append((event.step if event.step is not None else self.step, self.eval_loss))
        elif isinstance(event, Heartbeat) and isinstance(event.step, int):
            self.step = max(self.step, event.step)

    def eta(self) -> float | None:
        """Seconds left, from the training rate so far (time spent before training excluded)."""
        if self.finished:
            return None
        return eta(self.first_loss, (self.elapsed, self.step), self.total_steps)

    def counts(self) -> tuple[int | None, int]:
        return self.total_steps, self.step

    def stats_parts(self) -> list[str]:
        parts = [f"step {self.step:,}/{self.total_steps:,}" if self.total_steps else f"step {self.step:,}"]
        if self.epochs:
            parts.append(f"epoch {max(1, self.epoch)}/{self.epochs}")
        if self.loss is not None:
            parts.append(f"loss {self.loss:.3f}")
        parts.append(fmt.rate(self.tokens_per_s))
        if self.world_size > 1:
            parts.append(f"{self.world_size} processes")
        if not self.finished:
            parts.append(f"ETA {fmt.duration(self.eta())}")
        return parts

    def outcome_figures(self) -> list[tuple[str, str]]:
        summary = self.summary or {}
        figures = []
        final = summary.get("final_loss", self.loss)
        if isinstance(final, (int, float)):
            figures.append(("final loss", f"{final:.3f}"))
        eval_loss = summary.get("eval_loss", self.eval_loss)
        if isinstance(eval_loss, (int, float)):
            figures.append(("eval loss", f"{eval_loss:.3f}"))
        return figures


class LossView(Vertical):
    """The loss chart of a training run: what the live tab and the run screen show of it."""

    takes_keys = False  # a chart: a run screen gives the keys to its config instead

    def __init__(self, live: bool = True, id: str | None = None) -> None:
        super().__init__(id=id, classes="kind-view")
        self.live = live
        self._charted = (0, 0)  # how many train and eval points the chart already has

    def compose(self) -> ComposeResult:
        yield LossChart(id="chart") if self.live else LossChart(id="chart", empty_text="no loss recorded")

    def reset(self) -> None:
        self._charted = (0, 0)
        self.query_one(LossChart).clear()

    def show(self, progress: TrainingProgress) -> None:
        """Add what the progress has gained since the last call, then redraw (incremental, so a live run is cheap)."""
        chart = self.query_one(LossChart)
        n_train, n_eval = self._charted
        chart.add_loss(progress.losses[n_train:])
        chart.add_eval(progress.eval_points[n_eval:])
        self._charted = (len(progress.losses), len(progress.eval_points))
        chart.flush()
        if self.live:
            self.display = bool(progress.losses) or not progress.finished  # a run that failed before training needs the room
