"""`--report-to tensorboard|wandb|none`: a run's curves in the trackers people watch big runs with.

The trackers are accelerate's own (accelerate.tracking), fed from the run's events: every event
with a `step` (loss, eval) becomes one log call with its numbers, `loss/loss`, `eval/eval_loss`
and so on. events.jsonl stays the source of truth; a tracker is a view of it, so one that fails
to write costs a log line, never the run. Only rank 0 reports (it is the only rank with events).

TensorBoard logs go to the run folder's `tensorboard/` (`tensorboard --logdir RUN/tensorboard`);
it needs the `tensorboard` or `tensorboardX` package. wandb needs the `wandb` package and a login
(`wandb login`), unless WANDB_MODE=offline or disabled, which it respects.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from core.errors import UsageError

REPORT_TO = ("none", "tensorboard", "wandb")
_SKIP = {"time", "elapsed", "step"}


def report_to_option():
    """The `report_to` config field, the same for every kind that trains."""
    from core.options import option

    return option("none", "Also send the curves to TensorBoard (logs in RUN/tensorboard) or wandb (installed and "
                  "logged in, or WANDB_MODE=offline), through accelerate's trackers; events.jsonl stays the record.",
                  choices=REPORT_TO)


def check(report_to: str) -> None:
    """UsageError, before any file exists, when the tracker asked for cannot work here."""
    if report_to not in REPORT_TO:
        raise UsageError(f"--report-to {report_to} is not one of {', '.join(REPORT_TO)}")
    if report_to == "tensorboard" and not (importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX")):
        raise UsageError("--report-to tensorboard needs the tensorboard package: pip install tensorboard "
                         "(or the smaller tensorboardX)")
    if report_to == "wandb":
        if not importlib.util.find_spec("wandb"):
            raise UsageError("--report-to wandb needs the wandb package: pip install wandb, then wandb login")
        if os.environ.get("WANDB_MODE", "").lower() not in ("offline", "disabled", "dryrun") and not _wandb_logged_in():
            raise UsageError("--report-to wandb: wandb is not logged in; run 'wandb login', or set WANDB_MODE=offline "
                             "to keep the logs local")


def _wandb_logged_in() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        import wandb

        return bool(wandb.api.api_key)
    except Exception:  # an old or broken wandb install: treat as not logged in
        return False


class Tracker:
    """One accelerate tracker, fed with a run's events."""

    def __init__(self, report_to: str, run_dir: Path, config: dict) -> None:
        from accelerate.tracking import TensorBoardTracker, WandBTracker

        self.name = report_to
        if report_to == "tensorboard":
            self.tracker = TensorBoardTracker(run_dir.name, logging_dir=run_dir / "tensorboard")
        else:
            self.tracker = WandBTracker(run_dir.name, dir=str(run_dir))
        if hasattr(self.tracker, "start"):  # accelerate >= 1.6 starts a tracker in start(); older ones in __init__
            self.tracker.start()
        self.tracker.store_init_configuration({k: v for k, v in config.items() if isinstance(v, (int, float, str, bool))})
        self.failed: str | None = None

    def on_event(self, event) -> None:
        fields = event.record()
        if self.failed or "step" not in fields:
            return
        values = {f"{event.type}/{k}": v for k, v in fields.items()
                  if k not in _SKIP and isinstance(v, (int, float)) and not isinstance(v, bool)}
        if not values:
            return
        try:
            self.tracker.log(values, step=int(fields["step"]))
        except Exception as exc:  # a tracker is a view of events.jsonl; it must not end the run
            self.failed = f"{self.name} stopped reporting: {type(exc).__name__}: {exc}"

    def close(self) -> None:
        try:
            self.tracker.finish()
        except Exception:
            pass


def open_tracker(report_to: str, run_dir: Path, config: dict) -> Tracker | None:
    return None if report_to in (None, "none") else Tracker(report_to, run_dir, config)


__all__ = ["REPORT_TO", "check", "open_tracker", "Tracker"]
