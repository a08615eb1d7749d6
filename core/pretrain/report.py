"""What a finished pretraining run hands in: loss.png and report.md, both built from events.jsonl."""

from __future__ import annotations

from pathlib import Path

from core.hardware import markdown_table
from core.runs import iter_jsonl


def loss_series(events_path: Path) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """([(step, train loss)], [(step, eval loss)]) from a run's event log."""
    train, evals = [], []
    for ev in iter_jsonl(events_path):
        if ev.get("type") == "resume":  # a resumed run repeats the steps after its checkpoint
            train = [p for p in train if p[0] <= ev["step"]]
            evals = [p for p in evals if p[0] <= ev["step"]]
        elif ev.get("type") == "loss":
            train.append((ev["step"], ev["loss"]))
        elif ev.get("type") == "eval":
            evals.append((ev["step"], ev["eval_loss"]))
    return train, evals


def plot_loss(events_path: Path, out_png: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display on a GPU box over SSH
    import matplotlib.pyplot as plt

    train, evals = loss_series(events_path)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    if train:
        ax.plot([s for s, _ in train], [v for _, v in train], label="training loss", color="#1f77b4")
    if evals:
        ax.scatter([s for s, _ in evals], [v for _, v in evals], label="eval loss (held-out)",
                   color="#d62728", zorder=3)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if train or evals:
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)


def _fmt(value, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def render_report(run_dir: Path, summary: dict) -> str:
    """report.md: times, model, data, throughput, losses, hardware and the speed-ups that were active."""
    s = summary
    if "train_seconds" not in s:  # failed before training: say what happened and nothing more
        lines = [f"# GPT-2 pretraining report — {run_dir.name}", "", f"Status: **{s['status']}**",
                 "", f"Error: {s.get('error') or '-'}", "", f"Total time: {s['total_seconds']:.1f} s", ""]
        return "\n".join(lines)
    phases = " · ".join(f"{k} {v:.2f} s" for k, v in s.get("phases", {}).items())
    lines = [
        f"# GPT-2 pretraining report — {run_dir.name}",
        "",
        f"Status: **{s['status']}**" + (f" ({s['error']})" if s.get("error") else ""),
        "",
        "| | |",
        "|---|---|",
        f"| Total time (process start to this report) | **{s['total_seconds']:.1f} s** |",
        f"| Training loop | {s['train_seconds']:.1f} s |",
        f"| Phases | {phases} |",
        f"| Model | GPT-2 `{s['model_size']}` preset, {s['n_params'] / 1e6:.1f} M parameters, random init |",
        f"| Data | {s['data_source']} |",
        f"| Rows | {s['rows']} training rows, {s['eval_rows']} held-out rows ({s['held_out']}) |",
        f"| Tokens per epoch | {s['tokens_per_epoch']:,} (EOS appended to each row) |",
        f"| Epochs / steps | {s['epochs_completed']} of {s['epochs']} / {s['steps']} optimizer steps |",
        f"| Batch | {s['batch_size']} × {s['block_size']} tokens |",
        f"| Throughput | {_fmt(s.get('tokens_per_second'), ',.0f')} tokens/s"
        + (f", MFU {s['mfu'] * 100:.1f} %" if s.get("mfu") else "") + " |",
        f"| Final training loss | {_fmt(s.get('final_loss'))} |",
        f"| Eval loss by epoch | {', '.join(f'{x:.4f}' for x in s.get('eval_losses', [])) or '-'}"
        + (" (early stop)" if s.get("stopped_early") else "") + " |",
        f"| Tokenizer | {s['tokenizer']} |",
        "",
        "## Training loss",
        "",
        "![training loss](loss.png)",
        "",
        "## Hardware",
        "",
        markdown_table(s["hardware"]),
        "",
        "## Speed-ups active in this run",
        "",
        *[f"- {o}" for o in s.get("optimizations", [])],
        "",
    ]
    lines += _tokenizer_lines(s) + _sample_lines(s)
    if s.get("demo"):
        lines[1:1] = ["", "> Demo run: a bundled corpus and a tiny GPT-2; the figures show the flow, not the seed task."]
    return "\n".join(lines)


def _tokenizer_lines(s: dict) -> list[str]:
    if not s.get("tokenizer_compression"):
        return []
    lines = ["## Tokenizer", "", "A byte-level BPE trained on the training rows first (saved in `tokenizer/`); compression on "
             "the held-out rows:", "", "| tokenizer | tokens per character | tokens per byte |", "|---|---|---|"]
    lines += [f"| {name} | {c['tokens_per_char']} | {c['tokens_per_byte']} |" for name, c in s["tokenizer_compression"].items()]
    return lines + [""]


def _sample_lines(s: dict) -> list[str]:
    """The greedy continuations of each prompt at the first, middle and last checks; degenerate ones flagged."""
    samples = s.get("samples") or []
    if not samples:
        return []
    steps = sorted({x["step"] for x in samples})
    shown = sorted({steps[0], steps[len(steps) // 2], steps[-1]})
    lines = ["## Generation samples", "",
             f"Greedy continuations at steps {', '.join(map(str, shown))} of {len(steps)} checks; ⚠ marks a degenerate "
             f"sample (distinct-2 below 0.3, or one token 8 or more times in a row). {s.get('degenerate_samples', 0)} of "
             f"{len(samples)} samples (greedy and top-p) were degenerate.", ""]
    for prompt in dict.fromkeys(x["prompt"] for x in samples):
        lines.append(f"- `{prompt}`")
        for x in samples:
            if x["prompt"] == prompt and x["mode"] == "greedy" and x["step"] in shown:
                flag = " ⚠" if x["degenerate"] else ""
                lines.append(f"  - step {x['step']}{flag}: {x['text'][:120]!r} (distinct-2 {x['distinct_2']}, "
                             f"longest repeat {x['longest_repeat']})")
    return lines + [""]
