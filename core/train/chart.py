"""loss.png of a training run (pretraining, fine-tuning): the train loss by step and the held-out checks, from its events."""

from __future__ import annotations

from pathlib import Path

from core.runlog import RunFolder


def plot_losses(run_dir: Path, title: str, train_label: str = "training loss",
                eval_label: str = "eval loss (held-out)") -> Path:
    """Draw run_dir/loss.png from run_dir's events.jsonl and return its path."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a GPU box over SSH
    import matplotlib.pyplot as plt

    train, evals = RunFolder(Path(run_dir)).loss_series()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    if train:
        ax.plot([s for s, _ in train], [v for _, v in train], label=train_label, color="#1f77b4")
    if evals:
        ax.plot([s for s, _ in evals], [v for _, v in evals], "o", label=eval_label, color="#d62728", zorder=3)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if train or evals:
        ax.legend()
    fig.tight_layout()
    out = Path(run_dir) / "loss.png"
    fig.savefig(out)
    plt.close(fig)
    return out
