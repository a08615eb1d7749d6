"""Fine-tuning bench: llmlab's `run_finetune` against a plain peft + transformers.Trainer script, same device, same examples.

    python bench/finetune.py                      # the bundled exam on the eval demo's tiny model (CPU-sized)
    python bench/finetune.py --model DIR --data exam.csv --epochs 2

llmlab runs first and writes its split files; the baseline trains on exactly those train
examples (llmlab's template and shuffle copies) with the same LoRA settings, epochs, batch size
and learning rate, and both adapters' losses on the same val examples are reported. Each run is a
child process of its own (bench/common.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS_DIR, WORK_DIR, ChildRunner, device_facts, markdown_table, ratio, save_results

JOBS = "bench.finetune_jobs"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="a local base model folder (default: the eval demo's tiny random Qwen2)")
    ap.add_argument("--data", help="an exam CSV (default: core/demo_data/exams_demo.csv)")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--shuffle-copies", type=int, default=2)
    ap.add_argument("--results-dir")
    ap.add_argument("--name", default="finetune")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--deadline", type=float)
    args = ap.parse_args(argv)
    t_start = time.monotonic()
    from core.finetune.config import demo_config
    from core.lm.demo import ensure_demo_model

    demo = demo_config()
    model_dir = str(Path(args.model).resolve()) if args.model else str(ensure_demo_model())
    config = {"model": model_dir, "data": str(Path(args.data).resolve()) if args.data else demo.data, "rank": demo.rank,
              "alpha": demo.alpha, "dropout": demo.dropout, "lr": demo.lr, "epochs": args.epochs, "batch_size": demo.batch_size,
              "max_length": demo.max_length, "shuffle_copies": args.shuffle_copies, "val_per_subject": demo.val_per_subject,
              "test_per_subject": demo.test_per_subject, "test_max_new_tokens": demo.test_max_new_tokens, "seed": demo.seed}
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    child = ChildRunner(JOBS, args.timeout, args.deadline, {}, t_start)
    ours = child({"engine": "llmlab", "config": config}, "llmlab")
    base = {"error": "skipped: the llmlab run failed"}
    if not ours.get("error"):
        from core.runs import read_json

        run_dir = Path(ours["run_dir"])
        targets = read_json(run_dir / "summary.json")["target_modules"]
        base = child({"engine": "baseline", "config": config, "model_dir": model_dir, "data_dir": str(run_dir / "data"),
                      "target_modules": targets}, "baseline")
    facts = device_facts()
    notes = ["CPU run: these figures are not a GPU claim."] if not facts["hardware"]["gpus"] else []
    notes.append(f"Model: {model_dir}; data: {config['data']}; LoRA r={config['rank']} alpha={config['alpha']}, "
                 f"{config['epochs']} epochs, batch {config['batch_size']}, lr {config['lr']}, "
                 f"{args.shuffle_copies} shuffle copies.")
    payload = {"bench": "finetune", "date": date.today().isoformat(), "facts": facts, "notes": notes, "options": vars(args),
               "llmlab": ours, "baseline": base, "wall_seconds": round(time.monotonic() - t_start, 1)}
    path = save_results(Path(args.results_dir) if args.results_dir else RESULTS_DIR, facts, args.name, payload)
    print("\n" + render(payload) + f"\n\nresults: {path}", flush=True)
    return payload


def render(payload: dict) -> str:
    ours, base = payload["llmlab"], payload["baseline"]
    def speedup(key):
        value = ratio(base.get(key), ours.get(key)) if key.endswith("seconds") else None
        return f"{value}×" if value else "-"

    rows = [[label, base.get(key, "-"), ours.get(key, "-"), speedup(key)]
            for label, key in (("train seconds", "train_seconds"), ("total seconds", "total_seconds"),
                               ("process seconds", "process_seconds"), ("optimizer steps", "steps"),
                               ("trainable parameters", "trainable_params"), ("val loss at the end", "final_val_loss"),
                               ("peak GPU memory MiB", "peak_memory_mib"))]
    errors = [f"Failed: {name}: {r['error']}" for name, r in (("llmlab", ours), ("baseline", base)) if r.get("error")]
    head = f"Device: {payload['facts']['device']}; {payload['date']}.\n" + "\n".join(f"- {n}" for n in payload["notes"])
    return "\n\n".join([head, markdown_table(["figure", "peft + Trainer", "llmlab", "llmlab speed-up"], rows), *errors])


if __name__ == "__main__":
    main()
