"""Block size on short rows: seed 004 found 128 tokens beat 1024 for a Chinese GPT-2 on short texts.

    python bench/block_size.py                 # the bundled Chinese corpus, its own 4,000-token BPE, tiny model
    python bench/block_size.py --data FILE --vocab-size 32000 --model-size default   # a real run on a GPU
    python bench/block_size.py --smoke         # a few hundred rows, one epoch: checks the script

First a byte-level BPE is trained on the training rows (`llmlab tokenizer train`, in a child).
Then every variant pretrains with llmlab, each in a fresh process, on the same rows, for the
same epochs, from the same seed, with the model's context fixed at --context for all of them,
so the block size (and how much it packs into one step) is the only change:

  128 x 8      the default: 8 sequences of 128 tokens per step
  1024 x 8     the same sequences per step: 8x the tokens per step, 1/8 of the steps
  1024 x 1     the same tokens per step and the same step count, in one long sequence
  128 x 8, context 128   the default with a model whose context is only 128 (as the seed built it)

Quality is the held-out loss with each row scored alone (bench.pretrain_jobs.heldout_loss), as
a short text is used; llmlab's own eval loss is over packed blocks of each run's size, so it is
shown but not comparable across block sizes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `core` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    REPO_ROOT,
    RESULTS_DIR,
    WORK_DIR,
    ChildRunner,
    device_facts,
    fmt,
    markdown_table,
    offline_env,
    save_results,
)

JOBS = "bench.pretrain_jobs"
DEMO_ZH = REPO_ROOT / "core" / "demo_data" / "demo_corpus_zh.txt"
SMOKE_DEFAULTS = {"rows": 400, "eval_rows": 50, "epochs": 1, "vocab_size": 600, "results_dir": str(RESULTS_DIR / "smoke")}


def variants(context: int) -> list[tuple[str, dict]]:
    same_context = {"model_overrides": {"n_positions": context}}
    return [
        ("128 x 8", {"block_size": 128, "batch_size": 8, **same_context}),
        ("1024 x 8 (same sequences)", {"block_size": 1024, "batch_size": 8, **same_context}),
        ("1024 x 1 (same tokens)", {"block_size": 1024, "batch_size": 1, **same_context}),
        ("128 x 8, context 128", {"block_size": 128, "batch_size": 8, "model_overrides": {"n_positions": 128}}),
    ]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(DEMO_ZH), help="short-row text (default: the bundled Chinese corpus)")
    p.add_argument("--rows", type=int, default=5400)
    p.add_argument("--eval-rows", type=int, default=600)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--vocab-size", type=int, default=4000, help="of the BPE trained first")
    p.add_argument("--model-size", default="tiny")
    p.add_argument("--context", type=int, default=1024, help="the model's n_positions in every variant but the last")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--timeout", type=float, default=1800, help="seconds per child")
    p.add_argument("--deadline", type=float, default=None, help="seconds for the whole bench")
    p.add_argument("--results-dir", default=None)
    p.add_argument("--name", default="block-size")
    p.add_argument("--smoke", action="store_true", help="CI-sized; the figures mean nothing")
    return p


def train_tokenizer(args, out: Path) -> tuple[Path, dict]:
    """`llmlab tokenizer train` in a child, so this process stays free of torch and transformers."""
    cmd = [sys.executable, "-m", "core.cli", "tokenizer", "train", "--data", args.data, "--rows", str(args.rows),
           "--eval-rows", str(args.eval_rows), "--vocab-size", str(args.vocab_size), "--out", str(out)]
    print("[bench] training the tokenizer ...", flush=True)
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=offline_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"tokenizer training failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    import json

    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    return out / "tokenizer", {k: summary.get(k) for k in ("vocab_size", "compression", "train_seconds")}


def render(payload: dict) -> str:
    rows = []
    for run in payload["runs"]:
        if run.get("error"):
            rows.append([run["variant"], run["error"][:60], *["-"] * 7])
            continue
        rows.append([run["variant"], run["block_size"], run["batch_size"], run["block_size"] * run["batch_size"],
                     run["steps"], run["train_seconds"], run["tokens_per_second"], run["own_eval_loss"],
                     run["heldout_loss"]])
    header = ["variant", "block", "batch", "tokens/step", "steps", "train s", "tokens/s", "own eval loss (packed)",
              "held-out loss (rows alone)"]
    best = payload.get("best")
    lines = [f"# Block size on short rows ({payload['facts']['device']}, {payload['date']})", "",
             *[f"- {n}" for n in payload["notes"]], "", markdown_table(header, rows)]
    if best:
        lines += ["", f"Lowest held-out loss: {best['variant']} ({fmt(best['heldout_loss'])})."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if "--smoke" in argv:
        parser.set_defaults(**SMOKE_DEFAULTS)
    args = parser.parse_args(argv)
    t_start = time.monotonic()
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    args.data = str(Path(args.data).resolve())
    tokenizer_dir, tokenizer = train_tokenizer(args, Path(tempfile.mkdtemp(prefix="block-size-bpe-", dir=WORK_DIR)) / "run")
    facts = device_facts()
    notes = [f"Data: {args.data}, first {args.rows} rows, the next {args.eval_rows} held out; {args.epochs} epochs.",
             f"Tokenizer: a byte-level BPE of {tokenizer['vocab_size']} tokens trained on those rows "
             "(held-out tokens per character: " + ", ".join(f"{name} {c['tokens_per_char']}" for name, c in
                                                           (tokenizer["compression"] or {}).items()) + ").",
             f"Model: llmlab preset '{args.model_size}' with random weights, context {args.context} unless the variant "
             f"says otherwise; lr {args.lr}, llmlab's warm-up, cosine schedule and weight decay.",
             "Held-out loss: each held-out row scored alone (no packing, no padding in the loss); the comparable figure."]
    if not facts["hardware"]["gpus"]:
        notes.append("CPU run: times are a 2-core CPU's, not a GPU claim; the losses are what the bench measures.")
    child = ChildRunner(JOBS, args.timeout, args.deadline,
                        {"engine": "llmlab", "data": args.data, "rows": args.rows, "eval_rows": args.eval_rows,
                         "epochs": args.epochs, "model_size": args.model_size, "seed": args.seed,
                         "tokenizer_dir": str(tokenizer_dir)}, t_start)
    cache = tempfile.mkdtemp(prefix="token-cache-block-size-", dir=WORK_DIR)  # tokenized once, shared by every variant
    runs = []
    for name, overrides in variants(args.context):
        job = {"cache_dir": cache, "overrides": {"lr": args.lr, "sample_tokens": 0, **overrides}}
        runs.append({"variant": name, "overrides": overrides, **child(job, name)})
    scored = [r for r in runs if r.get("heldout_loss") is not None]
    best = min(scored, key=lambda r: r["heldout_loss"]) if scored else None
    payload = {"bench": "block_size", "date": date.today().isoformat(), "facts": facts, "notes": notes,
               "options": vars(args), "tokenizer": tokenizer, "runs": runs,
               "best": {"variant": best["variant"], "heldout_loss": best["heldout_loss"]} if best else None,
               "wall_seconds": round(time.monotonic() - t_start, 1)}
    path = save_results(Path(args.results_dir) if args.results_dir else RESULTS_DIR, facts, args.name, payload)
    print("\n" + render(payload) + f"\n\nresults: {path}  (whole bench {payload['wall_seconds']} s)", flush=True)
    return payload


if __name__ == "__main__":
    main()
