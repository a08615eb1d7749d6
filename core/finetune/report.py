"""What a fine-tuning run hands in: report.md (its loss.png is drawn by core/train/chart.py from the events)."""

from __future__ import annotations

from pathlib import Path

from core.hardware import markdown_table

FLIPS_SHOWN = 3


def _pct(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def flips(before: list[dict], after: list[dict]) -> tuple[list, list]:
    """(questions the adapter got right that the base got wrong, and the other way round)."""
    old = {r["question_id"]: r for r in before}
    fixed, broken = [], []
    for r in after:
        b = old.get(r["question_id"])
        if b is not None and b["correct"] != r["correct"]:
            (fixed if r["correct"] else broken).append((b, r))
    return fixed, broken


def _retention_rows(s: dict) -> list[str]:
    if "squad_before" not in s:
        return []
    b, a = s["squad_before"], s.get("squad_after") or {}
    rows = [f"| SQuAD (retention check) | base EM {b['exact_match']:.2f}, F1 {b['f1']:.2f} → tuned EM "
            f"{a.get('exact_match', float('nan')):.2f}, F1 {a.get('f1', float('nan')):.2f} ({b['n']} questions) |"]
    if s.get("retention"):
        r = s["retention"]
        verdict = "kept" if s["retention_ok"] else f"**below {s['retain_threshold']:.0%} or undefined (base 0)**"
        rows.append(f"| Retention (after / before) | EM {r['exact_match']}, F1 {r['f1']}: {verdict} |")
    return rows


def _ensemble_rows(s: dict) -> list[str]:
    """--ensemble: each adapter's test accuracy, then the vote's (the run's after-accuracy)."""
    e = s.get("ensemble") or {}
    if not e.get("members"):
        return []
    rows = [f"| Ensemble | {len(e['members'])} of {e['size']} adapters ({e['data']} data, seeds "
            f"{', '.join(str(m['seed']) for m in e['members'])}), in `members/` |"]
    rows += [f"| adapter {m['member']} | test accuracy {_pct(m.get('test_accuracy'))}, {m['train_questions']} training "
             f"questions, best val loss {m.get('best_val_loss')} |" for m in e["members"]]
    if e.get("vote_accuracy") is not None:
        rows.append(f"| **vote** | **{_pct(e['vote_accuracy'])}** ({e.get('ties', 0)} ties; most frequent letter, a tie "
                    f"to the more accurate adapter) |")
    return rows


def render_report(run_dir: Path, s: dict, before: list[dict], after: list[dict]) -> str:
    lines = [f"# LoRA fine-tuning report — {run_dir.name}", ""]
    if s.get("demo"):
        lines += ["> Demo run: the bundled exam and a tiny random-weight model; it shows the flow, "
                  "its accuracy means nothing.", ""]
    lines += [f"Status: **{s['status']}**" + (f" ({s['error']})" if s.get("error") else ""), ""]
    if "trainable_params" not in s:
        lines += [f"Total time: {s['total_seconds']:.1f} s", ""]
        return "\n".join(lines)
    lines += [
        "| | |", "|---|---|",
        f"| Test accuracy | **{_pct(s.get('test_accuracy_before'))} → {_pct(s.get('test_accuracy_after'))}** "
        f"(base → base + adapter, {s.get('test')} questions) |",
        f"| Trainable parameters | {s['trainable_params']:,} of {s['total_params']:,} base parameters "
        f"(trainable ratio {s['trainable_ratio']:.6f}) |",
        f"| LoRA targets | `{s.get('target_modules')}` |",
        f"| Model | {s.get('model')} |",
        f"| Data | {s.get('data')}; template {s.get('template')} |",
        f"| Splits | {s.get('train_questions')} train questions ({s.get('train_examples')} examples with "
        f"{s.get('shuffle_copies')} shuffle copies), {s.get('val')} val, {s.get('test')} test; split by {s.get('split_by')}; "
        f"question ids in more than one split: {s['leak_check']['question_ids_in_more_than_one_split']} |",
        f"| Steps / epochs | {s.get('steps')} / {s.get('epochs_completed')} of {s.get('epochs')}"
        + (" (early stop)" if s.get("stopped_early") else "") + " |",
        f"| Final train loss | {s.get('train_loss')} |",
        f"| Val loss by epoch | {', '.join(f'{k}: {v}' for k, v in (s.get('val_loss_by_epoch') or {}).items()) or '-'} |",
        f"| Best adapter | val loss {s.get('best_val_loss')} at epoch {s.get('best_epoch')} (step {s.get('best_step')}), "
        f"in `adapter/` |",
        *_retention_rows(s),
        *_ensemble_rows(s),
        *([f"| Contest score (1 − ratio) × 0.3 + accuracy × 0.7 | **{s['score']:.4f}** |"] if "score" in s else []),
        f"| Times | total {s['total_seconds']:.1f} s, training {s.get('train_seconds', 0):.1f} s, test before "
        f"{s.get('test_seconds_before', 0):.1f} s, after {s.get('test_seconds_after', 0):.1f} s |",
        "", "## Loss", "", "![train and val loss](loss.png)", "",
    ]
    fixed, broken = flips(before, after)
    lines += [f"## Questions that flipped ({len(fixed)} fixed, {len(broken)} broken)", ""]
    for label, pairs in (("fixed", fixed), ("broken", broken)):
        for b, a in pairs[:FLIPS_SHOWN]:
            lines += [f"- **{label}** ({a['subject']}): {a['question'][:160]!r}: gold {a['gold']}; base said "
                      f"{b['pred'] or 'nothing'} ({b['output'][:60]!r}), tuned says {a['pred'] or 'nothing'} "
                      f"({a['output'][:60]!r})"]
    if not (fixed or broken):
        lines.append("None.")
    lines += ["", "## Hardware", "", markdown_table(s["hardware"]), "", "## Speed-ups active in this run", ""]
    lines += [f"- {o}" for o in s.get("optimizations") or []] or ["- none"]
    return "\n".join(lines) + "\n"
