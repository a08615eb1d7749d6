"""Fine-tuning in the app: train and val loss on one chart, the adapter's size, and the test answered before and after."""

from __future__ import annotations

from dataclasses import dataclass

from core.runlog import EvalLoss, Event, Lora, Loss, Plan, Progress
from tui import format as fmt
from tui.kinds.training import LossView, TrainingProgress


@dataclass
class FinetuneProgress(TrainingProgress):
    trainable_params: int | None = None
    total_params: int | None = None
    trainable_ratio: float | None = None
    test_phase: str = ""          # "before" or "after" while the test questions are being answered
    test_done: int = 0
    test_total: int | None = None

    def apply_event(self, event: Event) -> None:
        super().apply_event(event)
        if isinstance(event, Lora):
            self.trainable_params = event.trainable_params
            self.total_params = event.total_params
            self.trainable_ratio = event.trainable_ratio
        elif isinstance(event, Progress):
            self.test_phase = str(event.phase or "")
            self.test_done, self.test_total = int(event.done or 0), event.total
            self.phase = f"test {self.test_phase}"
        elif isinstance(event, (Plan, Loss, EvalLoss)):  # training (again): the test answers are not what runs now
            self.test_phase = ""

    def counts(self) -> tuple[int | None, int]:
        if self.test_phase and not self.finished:  # answering the test questions, before or after training
            return self.test_total, self.test_done
        return super().counts()

    def stats_parts(self) -> list[str]:
        parts = super().stats_parts()
        if self.eval_loss is not None:
            parts.insert(3 if self.loss is not None else 2, f"val {self.eval_loss:.3f}")
        if self.trainable_params is not None:
            parts.append(f"LoRA {self.trainable_params:,} ({self.trainable_ratio:.3%})")
        if self.test_phase and not self.finished:
            parts.append(f"test {self.test_phase} {self.test_done}/{self.test_total}")
        return parts

    def outcome_figures(self) -> list[tuple[str, str]]:
        summary = self.summary or {}
        figures = []
        before, after = summary.get("test_accuracy_before"), summary.get("test_accuracy_after")
        if isinstance(after, (int, float)):
            shown = f"{fmt.percent(before)} → {fmt.percent(after)}" if isinstance(before, (int, float)) else fmt.percent(after)
            figures.append(("test accuracy", shown))
        if isinstance(summary.get("trainable_ratio"), (int, float)):
            figures.append(("trainable ratio", f"{summary['trainable_ratio']:.6f}"))
        if isinstance(summary.get("best_val_loss"), (int, float)):
            figures.append(("best val loss", f"{summary['best_val_loss']:.3f}"))
        retention = summary.get("retention") or {}
        if retention:
            kept = " / ".join("-" if retention.get(k) is None else f"{retention[k]:.0%}" for k in ("exact_match", "f1"))
            figures.append(("SQuAD kept (EM / F1)", kept + ("" if summary.get("retention_ok") else " ⚠")))
        if isinstance(summary.get("score"), (int, float)):
            figures.append(("score", f"{summary['score']:.4f}"))
        return figures


progress_class = FinetuneProgress
view_class = LossView
