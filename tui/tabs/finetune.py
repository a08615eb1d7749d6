"""The Fine-tune tab: the options of `llmlab finetune`, train and val loss on one chart, the adapter's size,
and the test accuracy before and after."""

from __future__ import annotations

from core.finetune.config import FinetuneConfig, demo_config
from tui import format as fmt
from tui.options import form_fields
from tui.progress import FinetuneProgress
from tui.tabs.training_tab import TrainingTab

_DEMO = demo_config()


class FinetuneTab(TrainingTab):
    kind = "finetune"
    title = "Fine-tune"
    progress_class = FinetuneProgress
    fields = form_fields(FinetuneConfig, ("model", "data", "template", "rank", "alpha", "targets", "lr", "epochs",
                                          "batch_size", "shuffle_copies", "val_per_subject", "test_per_subject", "out"))
    # What `llmlab finetune --demo` runs, from the engine's own demo config so the form cannot drift.
    demo_values = {
        "model": "bundled demo model", "data": "bundled demo exam", "rank": str(_DEMO.rank), "alpha": str(_DEMO.alpha),
        "lr": str(_DEMO.lr), "epochs": str(_DEMO.epochs), "batch-size": str(_DEMO.batch_size),
        "shuffle-copies": str(_DEMO.shuffle_copies), "val-per-subject": str(_DEMO.val_per_subject),
        "test-per-subject": str(_DEMO.test_per_subject),
    }

    progress: FinetuneProgress

    def progress_counts(self) -> tuple[int | None, int]:
        p = self.progress
        if p.test_phase and not p.finished:  # answering the test questions, before or after training
            return p.test_total, p.test_done
        return super().progress_counts()

    def stats_parts(self) -> list[str]:
        p = self.progress
        parts = super().stats_parts()
        if p.eval_loss is not None:
            parts.insert(3 if p.loss is not None else 2, f"val {p.eval_loss:.3f}")
        if p.trainable_params is not None:
            parts.append(f"LoRA {p.trainable_params:,} ({p.trainable_ratio:.3%})")
        if p.test_phase and not p.finished:
            parts.append(f"test {p.test_phase} {p.test_done}/{p.test_total}")
        return parts

    def outcome_figures(self) -> list[tuple[str, str]]:
        summary = self.progress.summary or {}
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
