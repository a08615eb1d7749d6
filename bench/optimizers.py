"""AdamW against Muon on the seed-shaped pretraining run: each swept over learning rates, compared at equal steps
and at equal wall time.

    python bench/optimizers.py                          # tiny and mid presets, 3 learning rates each, 10,000 rows
    python bench/optimizers.py --presets tiny --lrs 1e-3,3e-3,1e-2,2e-2
    python bench/optimizers.py --smoke                  # 200 rows, one epoch: checks the script

Every run is llmlab's own pretraining (`run_pretrain`, all defaults but the optimizer and --lr) in a
fresh process on the same rows, the same tokenizer and seed, for --epochs epochs; its quality is
the held-out loss of the saved model, each held-out row scored alone (bench.pretrain_jobs).

- **Equal steps:** each optimizer at its best learning rate, both for the full 3 epochs.
- **Equal wall time:** the one whose best run took longer is run again with `--max-steps` cut so
  that (at its measured seconds per step) it takes as long as the other's full run, with its
  schedule planned for those steps; both held-out losses are then the loss those seconds buy.

The winner at equal wall time is the default the issue asks for; the tables carry the machine and date.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `core` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    RESULTS_DIR,
    WORK_DIR,
    ChildRunner,
    device_facts,
    fmt,
    gpt2_tokenizer_dir,
    markdown_table,
    save_results,
)

JOBS = "bench.pretrain_jobs"
OPTIMIZERS = ("adamw", "muon")
SMOKE_DEFAULTS = {"rows": 200, "eval_rows": 50, "epochs": 1, "presets": "tiny", "lrs": "3e-3",
                  "results_dir": str(RESULTS_DIR / "smoke")}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="local rows (default: the synthetic BookCorpus-shaped rows bench/pretrain.py uses)")
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--eval-rows", type=int, default=500)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--presets", default="tiny,mid", help="llmlab model presets, comma-separated")
    p.add_argument("--lrs", default="1e-3,3e-3,1e-2", help="peak learning rates swept for each optimizer")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a PretrainConfig field for every run")
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--timeout", type=float, default=1800, help="seconds per child")
    p.add_argument("--deadline", type=float, default=None, help="seconds for the whole bench")
    p.add_argument("--results-dir", default=None)
    p.add_argument("--name", default="optimizers")
    p.add_argument("--smoke", action="store_true", help="CI-sized; the figures mean nothing")
    return p


def best_of(runs: list[dict], preset: str, optimizer: str) -> dict | None:
    scored = [r for r in runs if r["preset"] == preset and r["optimizer"] == optimizer and r.get("heldout_loss")
              is not None and not r.get("equal_time")]
    return min(scored, key=lambda r: r["heldout_loss"]) if scored else None


def equal_time_steps(slow: dict, fast: dict) -> int:
    """The steps the slower run gets in the faster run's training seconds, at its own measured pace."""
    per_step = slow["train_seconds"] / slow["steps"]
    return max(1, min(slow["steps"], int(fast["train_seconds"] / per_step)))


def compare(preset: str, runs: list[dict], child, base_job: dict) -> dict | None:
    best = {name: best_of(runs, preset, name) for name in OPTIMIZERS}
    if not all(best.values()):
        return None
    slow_name, fast_name = sorted(OPTIMIZERS, key=lambda n: best[n]["train_seconds"], reverse=True)
    slow, fast = best[slow_name], best[fast_name]
    steps = equal_time_steps(slow, fast)
    cut = child({**base_job, "overrides": {**slow["overrides"], "max_steps": steps}},
                f"{preset} {slow_name} lr {slow['lr']} cut to {steps} steps")
    cut.update(preset=preset, optimizer=slow_name, lr=slow["lr"], equal_time=True,
               overrides={**slow["overrides"], "max_steps": steps})
    runs.append(cut)
    at_time = {fast_name: fast, slow_name: cut}
    scored = {n: r["heldout_loss"] for n, r in at_time.items() if r.get("heldout_loss") is not None}
    return {"preset": preset, "best_lr": {n: best[n]["lr"] for n in OPTIMIZERS},
            "equal_steps": {n: best[n]["heldout_loss"] for n in OPTIMIZERS},
            "equal_steps_seconds": {n: best[n]["train_seconds"] for n in OPTIMIZERS},
            "equal_time": scored, "equal_time_seconds": {n: r.get("train_seconds") for n, r in at_time.items()},
            "equal_time_steps": {n: r.get("steps") for n, r in at_time.items()},
            "winner_equal_time": min(scored, key=scored.get) if len(scored) == 2 else None}


def render(payload: dict) -> str:
    lines = [f"# AdamW or Muon ({payload['facts']['device']}, {payload['date']})", "",
             *[f"- {n}" for n in payload["notes"]], "", "## Learning-rate sweep (3 epochs each)", ""]
    rows = []
    for r in payload["runs"]:
        if r.get("equal_time"):
            continue
        rows.append([r["preset"], r["optimizer"], r["lr"], r.get("steps"), r.get("train_seconds"),
                     r.get("tokens_per_second"), r.get("own_eval_loss"), r.get("heldout_loss") or r.get("error", "")[:50]])
    lines.append(markdown_table(["preset", "optimizer", "lr", "steps", "train s", "tokens/s", "own eval loss",
                                 "held-out loss"], rows))
    for c in payload["comparisons"]:
        lines += ["", f"## {c['preset']}: each at its best learning rate", ""]
        rows = [[n, c["best_lr"][n], fmt(c["equal_steps_seconds"][n]), c["equal_steps"][n],
                 c["equal_time_steps"][n], fmt(c["equal_time_seconds"][n]), c["equal_time"].get(n)] for n in OPTIMIZERS]
        lines.append(markdown_table(["optimizer", "best lr", "train s (3 epochs)", "held-out loss, equal steps",
                                     "steps in equal time", "train s", "held-out loss, equal wall time"], rows))
        lines += ["", f"Lower held-out loss at equal wall time: **{c['winner_equal_time']}**."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if "--smoke" in argv:
        parser.set_defaults(**SMOKE_DEFAULTS)
    args = parser.parse_args(argv)
    t_start = time.monotonic()
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    from bench.pretrain import parse_value, synthetic_data_file
    from bench.pretrain_jobs import fill_token_cache

    data = str(Path(args.data).resolve()) if args.data else str(synthetic_data_file(args.rows, args.eval_rows, args.seed))
    tokenizer_dir = str(gpt2_tokenizer_dir())
    cache = tempfile.mkdtemp(prefix="token-cache-optimizers-", dir=WORK_DIR)
    fill_token_cache(data, args.rows, args.eval_rows, tokenizer_dir, cache)  # every run starts warm
    common = {k: parse_value(k, v) for k, _, v in (pair.partition("=") for pair in args.set)}
    lrs = [float(x) for x in args.lrs.split(",")]
    facts = device_facts()
    notes = [f"Data: {'a local file' if args.data else 'synthetic BookCorpus-shaped rows'}, first {args.rows} rows, "
             f"the next {args.eval_rows} held out; {args.epochs} epochs; GPT-2 BPE.",
             "llmlab's defaults (8 x 128 tokens per step, warm-up then cosine, weight decay 0.1, held-out checks and "
             "samples at epoch ends) with only the optimizer and the peak lr changed.",
             "Muon: torch.optim.Muon on the blocks' attention and MLP matrices (adjust_lr_fn=match_rms_adamw), AdamW on "
             "embeddings (tied output layer), LayerNorms and biases; one lr for both.",
             "Held-out loss: each held-out row scored alone by bench.pretrain_jobs.heldout_loss."]
    if not facts["hardware"]["gpus"]:
        notes.append("CPU run: seconds are this machine's (2 cores), not a GPU claim.")
    base_job = {"engine": "llmlab", "data": data, "rows": args.rows, "cache_dir": cache}
    runs, comparisons = [], []
    for preset in args.presets.split(","):
        child = ChildRunner(JOBS, args.timeout, args.deadline,
                            {"eval_rows": args.eval_rows, "epochs": args.epochs, "model_size": preset, "seed": args.seed,
                             "tokenizer_dir": tokenizer_dir}, t_start)
        for optimizer in OPTIMIZERS:
            for lr in lrs:
                overrides = {**common, "optimizer": optimizer, "lr": lr}
                run = child({**base_job, "overrides": overrides}, f"{preset} {optimizer} lr {lr}")
                runs.append({"preset": preset, "optimizer": optimizer, "lr": lr, "overrides": overrides, **run})
        comparison = compare(preset, runs, child, base_job)
        if comparison:
            comparisons.append(comparison)
    payload = {"bench": "optimizers", "date": date.today().isoformat(), "facts": facts, "notes": notes,
               "options": vars(args), "runs": runs, "comparisons": comparisons,
               "wall_seconds": round(time.monotonic() - t_start, 1)}
    results_dir = Path(args.results_dir) if args.results_dir else RESULTS_DIR
    path = save_results(results_dir, facts, args.name, payload)
    table = render(payload)
    path.with_suffix(".md").write_text(table + "\n", encoding="utf-8")
    print("\n" + table + f"\n\nresults: {path}  (whole bench {payload['wall_seconds']} s)", flush=True)
    return payload


if __name__ == "__main__":
    main()
