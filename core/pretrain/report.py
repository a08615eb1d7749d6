"""What a finished pretraining run hands in: report.md (loss.png is core/train/chart.py's, from its events)."""

from __future__ import annotations

from pathlib import Path

from core.hardware import markdown_table


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
