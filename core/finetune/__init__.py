"""LoRA fine-tuning on multiple-choice exams (seeds 001-003): splits, shuffle copies, peft, before/after answers."""

from core.kinds import Kind


def headline(summary: dict) -> str:
    before, after = summary.get("test_accuracy_before"), summary.get("test_accuracy_after")
    if not isinstance(after, (int, float)):
        return ""
    text = f"acc {before * 100:.1f}% → {after * 100:.1f}%" if isinstance(before, (int, float)) else f"acc {after * 100:.1f}%"
    ensemble = summary.get("ensemble") or {}
    if ensemble.get("members") and isinstance(ensemble.get("vote_accuracy"), (int, float)):
        best = max((m.get("test_accuracy") or 0 for m in ensemble["members"]), default=0)
        text = f"vote of {len(ensemble['members'])} {ensemble['vote_accuracy'] * 100:.1f}% (best adapter {best * 100:.1f}%)"
    ratio = summary.get("trainable_ratio")
    return text + (f", ratio {ratio:.4f}" if isinstance(ratio, (int, float)) else "")


KIND = Kind(
    name="finetune", noun="a fine-tuning run", config="core.finetune.config:FinetuneConfig",
    job="core.finetune.run:FinetuneJob", demo="core.finetune.config:demo_config",
    demo_help="Offline demo: the bundled exam CSV and a tiny random model (~1 min on 2 cores).", processes=True,
    help="LoRA-tune a model on an A-D exam with leak-free splits and before/after accuracy.",
    figures=("test_accuracy_before", "test_accuracy_after", "trainable_params", "trainable_ratio", "best_val_loss",
             "best_epoch", "train_loss", "steps", "train_seconds", "total_seconds"),
    headline=headline, resumable=True, plan="core.finetune.plan:memory_plan", results=True,
)
