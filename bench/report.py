"""Markdown tables from a bench's result file, for the console and for bench/README.md.

`python -m bench.report --update-readme` puts the newest GPU result of each bench between the
README's markers. CPU results (smoke runs) are left out unless --include-cpu: they check the
scripts, they are not the headline.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from bench.common import BENCH_DIR, RESULTS_DIR, markdown_table, ratio

README = BENCH_DIR / "README.md"


def _cell_seconds(run: dict | None, key: str):
    if not run or run.get("error"):
        return None
    return run.get(key)


def _note_subset(run: dict | None) -> str:
    if run and run.get("scaled_from_fraction"):
        return f" (scaled from {run['scaled_from_fraction'] * 100:.0f}% of steps)"
    return ""


def pretrain_tables(payload: dict) -> str:
    parts = []
    for block in payload.get("scales", []):
        base, cold, warm = block.get("baseline"), block.get("llmlab_cold"), block.get("llmlab_warm")
        runs = [base, cold, warm]
        figures = [("total seconds (rows on disk → saved model)", "total_seconds"),
                   ("process seconds (incl. Python imports)", "process_seconds"),
                   ("train seconds", "train_seconds"), ("tokens/s (real tokens)", "tokens_per_second"),
                   ("MFU (6·N·tokens/time/bf16 peak)", "mfu"), ("peak GPU memory MiB", "peak_memory_mib"),
                   ("peak process memory (RSS) MiB", "peak_rss_mib"),
                   ("final training loss", "final_loss"), ("held-out loss (same rows, same code)", "heldout_loss"),
                   ("optimizer steps", "total_steps")]
        rows = []
        for label, key in figures:
            cells = [_cell_seconds(r, key) for r in runs]
            lower_is_better = key in ("total_seconds", "process_seconds", "train_seconds")
            speed = ratio(cells[0], cells[2]) if lower_is_better else (
                ratio(cells[2], cells[0]) if key == "tokens_per_second" else None)
            rows.append([label, *cells, f"{speed}×" if speed else "-"])
        title = f"**Scale {block['scale']}×: {block['rows']:,} rows, {payload['options']['epochs']} epochs**" \
                + _note_subset(base)
        parts.append(title + "\n\n" + markdown_table(
            ["figure", "HF Trainer baseline", "llmlab (cold token cache)", "llmlab (warm token cache)",
             "llmlab (warm) speed-up"], rows))
        errors = [f"{name}: {r['error']}" for name, r in zip(("baseline", "llmlab cold", "llmlab warm"), runs)
                  if r and r.get("error")]
        parts += [f"Failed: {e}" for e in errors]
    if len(payload.get("scales", [])) > 1:
        rows = []
        for block in payload["scales"]:
            base, warm = block.get("baseline") or {}, block.get("llmlab_warm") or {}
            rows.append([f"{block['scale']}×", block["rows"], base.get("total_seconds"), base.get("train_seconds"),
                         warm.get("total_seconds"), warm.get("train_seconds"),
                         ratio(base.get("total_seconds"), warm.get("total_seconds")),
                         ratio(base.get("train_seconds"), warm.get("train_seconds"))])
        parts.append("**Scaling**\n\n" + markdown_table(
            ["scale", "rows", "baseline total s", "baseline train s", "llmlab total s", "llmlab train s",
             "ratio total", "ratio train"], rows))
    if payload.get("levers"):
        parts.append("**Levers (llmlab, scale 1×, warm token cache; one change at a time)**\n\n" + lever_table(payload))
    return "\n\n".join(parts)


def lever_table(payload: dict) -> str:
    levers = payload["levers"]
    base = next((r for r in levers if r["lever"] == "base" and not r.get("error")), None)
    rows = []
    for run in levers:
        if run.get("error"):
            rows.append([run["lever"], json.dumps(run.get("overrides", {})), "failed", "-", "-", "-", "-", "-", "-", "-"])
            continue
        delta = None
        if base and run is not base and base.get("train_seconds"):
            delta = f"{(run['train_seconds'] / base['train_seconds'] - 1) * 100:+.0f}%"
        rows.append([run["lever"], json.dumps(run.get("overrides", {})), run.get("train_seconds"),
                     run.get("total_seconds"), run.get("tokens_per_second"), run.get("mfu"),
                     run.get("peak_memory_mib") or run.get("peak_rss_mib"),
                     run.get("total_steps"), run.get("heldout_loss"), delta or "-"])
    return markdown_table(["lever", "change", "train s", "total s", "tokens/s", "MFU", "peak MiB (GPU; CPU: process RSS)",
                           "steps", "held-out loss", "train time vs base"], rows)


def eval_tables(payload: dict) -> str:
    parts = []
    for block in payload.get("scales", []):
        base, ours = block.get("baseline"), block.get("llmlab")
        figures = [("total seconds (CSV + weights on disk → answers)", "total_seconds"),
                   ("process seconds (incl. Python imports)", "process_seconds"),
                   ("generate seconds", "generate_seconds"), ("new tokens", "new_tokens"),
                   ("tokens/s", "tokens_per_second"), ("peak GPU memory MiB", "peak_memory_mib"),
                   ("batch size", "batch_size"), ("dtype", "dtype"), ("accuracy (vs gold)", "accuracy")]
        rows = []
        for label, key in figures:
            cells = [_cell_seconds(r, key) for r in (base, ours)]
            faster = key in ("total_seconds", "process_seconds", "generate_seconds")
            speed = ratio(cells[0], cells[1]) if faster else (ratio(cells[1], cells[0]) if key == "tokens_per_second" else None)
            rows.append([label, *cells, f"{speed}×" if speed else "-"])
        note = ""
        if base and base.get("scaled_from_questions"):
            note = f" (baseline scaled from {base['scaled_from_questions']} questions"
            note += f" measured at scale {base['estimated_from_scale']}×)" if base.get("estimated_from_scale") else ")"
        agree = block.get("agreement") or {}
        title = (f"**Scale {block['scale']}×: {block['questions']} questions, max_new_tokens "
                 f"{payload['options']['max_new_tokens']}**{note}")
        text = title + "\n\n" + markdown_table(
            ["figure", "baseline (generate, one question at a time)", "llmlab", "llmlab speed-up"], rows)
        if agree:
            text += (f"\n\nAgreement on the {agree.get('compared')} questions both ran: same answer letter "
                     f"{agree.get('same_answer')}, identical replies {agree.get('same_tokens')}.")
        batched = block.get("batched_baseline")
        if batched:
            if batched.get("error"):
                text += f"\n\nFailed: batched baseline: {batched['error']}"
            else:
                same = block.get("batched_agreement") or {}
                text += ("\n\nThe plain batched way (one left-padded `model.generate` over all "
                         f"{batched['questions']} questions, "
                         f"{batched['dtype']}): "
                         f"generate {batched['generate_seconds']} s, total {batched['total_seconds']} s; llmlab is "
                         f"{ratio(batched.get('generate_seconds'), (ours or {}).get('generate_seconds')) or '-'}× faster at "
                         f"generating; identical replies {same.get('same_tokens')} of {same.get('compared')}.")
        parts.append(text)
        parts += [f"Failed: {name}: {r['error']}" for name, r in (("baseline", base), ("llmlab", ours)) if r and r.get("error")]
    if payload.get("fp32_check"):
        c = payload["fp32_check"]
        parts.append(f"**fp32 batched vs batch-1**: {c.get('same_tokens')} of {c.get('compared')} questions "
                     f"produced identical tokens; answer letters equal for {c.get('same_answer')}.")
    if len(payload.get("scales", [])) > 1:
        rows = [[f"{b['scale']}×", b["questions"], (b.get("baseline") or {}).get("generate_seconds"),
                 (b.get("llmlab") or {}).get("generate_seconds"), (b.get("llmlab") or {}).get("total_seconds"),
                 ratio((b.get("baseline") or {}).get("total_seconds"), (b.get("llmlab") or {}).get("total_seconds"))]
                for b in payload["scales"]]
        parts.append("**Scaling**\n\n" + markdown_table(
            ["scale", "questions", "baseline generate s", "llmlab generate s", "llmlab total s", "ratio total"], rows))
    if payload.get("levers"):
        rows = [[r["lever"], json.dumps(r.get("overrides", {})), "failed" if r.get("error") else r.get("generate_seconds"),
                 r.get("total_seconds"), r.get("tokens_per_second"), r.get("peak_memory_mib"),
                 (r.get("agreement") or {}).get("same_tokens")] for r in payload["levers"]]
        parts.append("**Levers (llmlab, scale 1×; one change at a time)**\n\n" + markdown_table(
            ["lever", "change", "generate s", "total s", "tokens/s", "peak MiB", "same tokens as base"], rows))
    return "\n\n".join(parts)


def header(payload: dict) -> str:
    f = payload["facts"]
    lines = [f"Device: {f['device']} (driver {f.get('gpu_driver') or '-'}, CUDA {f.get('cuda') or '-'}); "
             f"torch {f.get('torch')}, transformers {f.get('transformers')}; {payload['date']}."]
    lines += [f"- {n}" for n in payload.get("notes", [])]
    return "\n".join(lines)


def render(payload: dict) -> str:
    body = pretrain_tables(payload) if payload["bench"] == "pretrain" else eval_tables(payload)
    return header(payload) + "\n\n" + body


def latest(bench: str, include_cpu: bool, results_dir: Path = RESULTS_DIR) -> Path | None:
    files = sorted(results_dir.glob(f"*-{bench}.json"))
    if not include_cpu:
        files = [p for p in files if "-cpu-" not in p.name]
    return files[-1] if files else None


def update_readme(include_cpu: bool = False, results_dir: Path = RESULTS_DIR, readme: Path = README) -> list[str]:
    text = readme.read_text(encoding="utf-8")
    changed = []
    for bench in ("pretrain", "eval"):
        path = latest(bench, include_cpu, results_dir)
        if path is None:
            continue
        payload = json.loads(path.read_text(encoding="utf-8"))
        block = f"<!-- {bench}-table:start -->\nFrom `results/{path.name}`.\n\n{render(payload)}\n<!-- {bench}-table:end -->"
        pattern = re.compile(rf"<!-- {bench}-table:start -->.*?<!-- {bench}-table:end -->", re.S)
        if pattern.search(text):
            text = pattern.sub(lambda _m: block, text)
            changed.append(path.name)
    readme.write_text(text, encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", help="result files to print as tables")
    ap.add_argument("--update-readme", action="store_true", help="write the newest GPU tables into bench/README.md")
    ap.add_argument("--include-cpu", action="store_true", help="let CPU results into the README too")
    args = ap.parse_args(argv)
    for name in args.files:
        print(render(json.loads(Path(name).read_text(encoding="utf-8"))) + "\n")
    if args.update_readme:
        changed = update_readme(args.include_cpu)
        print("README updated from: " + (", ".join(changed) if changed else "nothing (no GPU results yet)"))


if __name__ == "__main__":
    sys.exit(main())
