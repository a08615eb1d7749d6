"""Data-parallel pretraining: tokens/s against the number of processes, same global batch, same steps.

    python bench/processes.py                          # CPU: 1 and 2 gloo processes, tiny model, Chinese demo rows
    python bench/processes.py --model-size default --data core/demo_data/demo_corpus.txt --tokenizer DIR --counts 1,2,4,8
    python bench/processes.py --smoke                  # a few steps: checks the script

Each count is one `llmlab pretrain --processes N` in a fresh process, exactly the command a
user runs (torch's elastic launcher, DistributedDataParallel, gloo on CPU, NCCL on GPUs). The
global batch (`--batch-size`) stays the same, so every count runs the same steps and should
reach the same losses (dropout 0: the same up to float rounding); only the time changes. The
table gives tokens/s (all ranks together), the speed-up over one process, and the final and
held-out losses, which show the runs trained the same model.
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

from bench.common import REPO_ROOT, RESULTS_DIR, WORK_DIR, device_facts, markdown_table, offline_env, save_results

DEMO_ZH = REPO_ROOT / "core" / "demo_data" / "demo_corpus_zh.txt"


def llmlab(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core.cli", *args], cwd=REPO_ROOT, env=offline_env(),
                          capture_output=True, text=True, timeout=timeout)


def tokenizer_for(args, work: Path) -> str:
    """The tokenizer to pretrain with: --tokenizer, or a byte-level BPE trained on the rows first."""
    if args.tokenizer:
        return args.tokenizer
    out = work / "bpe"
    done = llmlab(["tokenizer", "train", "--data", args.data, "--rows", str(args.rows), "--eval-rows",
                   str(args.eval_rows), "--vocab-size", str(args.vocab_size), "--out", str(out)], args.timeout)
    if done.returncode != 0:
        sys.exit(f"tokenizer training failed:\n{done.stderr[-2000:]}")
    return str(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--counts", default=None, help="process counts, e.g. 1,2,4 (default: 1 and 2 on CPU, 1..GPUs)")
    ap.add_argument("--data", default=str(DEMO_ZH))
    ap.add_argument("--tokenizer", default=None, help="a tokenizer (default: a BPE trained on the rows)")
    ap.add_argument("--vocab-size", type=int, default=4000)
    ap.add_argument("--rows", type=int, default=5400)
    ap.add_argument("--eval-rows", type=int, default=600)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--model-size", default="tiny")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--results-dir", default=None)
    ap.add_argument("--smoke", action="store_true", help="a few hundred rows, one epoch, vocabulary 600")
    args = ap.parse_args(argv)
    if args.smoke:
        args.rows, args.eval_rows, args.epochs, args.vocab_size = 400, 50, 1, 600
        args.results_dir = args.results_dir or str(RESULTS_DIR / "smoke")
    facts = device_facts()
    gpus = len(facts["hardware"]["gpus"])
    counts = [int(c) for c in args.counts.split(",")] if args.counts else ([1, 2] if not gpus else
                                                                         sorted({1, 2, 4, 8, gpus} & set(range(1, gpus + 1))))
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="processes-", dir=WORK_DIR))
    t0 = time.perf_counter()
    tokenizer = tokenizer_for(args, work)
    runs = []
    for n in counts:
        out = work / f"p{n}"
        cmd = ["pretrain", "--data", args.data, "--rows", str(args.rows), "--eval-rows", str(args.eval_rows),
               "--epochs", str(args.epochs), "--tokenizer", tokenizer, "--model-size", args.model_size,
               "--batch-size", str(args.batch_size), "--block-size", str(args.block_size), "--dropout", "0",
               "--sample-tokens", "0", "--out", str(out), *(["--processes", str(n)] if n > 1 else [])]
        print(f"[bench] {n} process{'es' if n > 1 else ''} ...", flush=True)
        started = time.perf_counter()
        done = llmlab(cmd, args.timeout)
        wall = time.perf_counter() - started
        if done.returncode != 0 or not (out / "summary.json").is_file():
            runs.append({"processes": n, "status": "failed", "error": done.stderr.strip().splitlines()[-1:] or None})
            continue
        from core.runs import read_json

        s = read_json(out / "summary.json")
        runs.append({"processes": n, "status": s["status"], "world_size": s.get("world_size"), "steps": s["steps"],
                     "train_seconds": s["train_seconds"], "total_seconds": s["total_seconds"], "wall_seconds": round(wall, 3),
                     "tokens_per_second": s["tokens_per_second"], "final_loss": s["final_loss"], "eval_loss": s["eval_loss"],
                     "optimizations": s["optimizations"], "device": s["device"]})
    base = next((r["tokens_per_second"] for r in runs if r["processes"] == 1 and r.get("tokens_per_second")), None)
    for r in runs:
        r["speedup"] = round(r["tokens_per_second"] / base, 3) if base and r.get("tokens_per_second") else None
    kind = "CPU (gloo)" if not gpus else "GPU (NCCL)"
    notes = [f"{args.model_size} model, {args.rows} rows of {Path(args.data).name}, {args.epochs} epochs, global batch "
             f"{args.batch_size} x {args.block_size} tokens for every count, dropout 0.",
             f"{kind} processes; tokens/s counts all ranks' training tokens over the training loop's time."]
    if not gpus:
        notes.append(f"CPU run on {facts['hardware']['cpu_cores_logical']} cores: the processes share those cores, "
                     f"so this measures the data-parallel path's overhead, not a GPU speed-up.")
    payload = {"bench": "processes", "date": date.today().isoformat(), "facts": facts, "notes": notes,
               "options": vars(args), "runs": runs, "seconds": round(time.perf_counter() - t0, 1)}
    results_dir = Path(args.results_dir) if args.results_dir else RESULTS_DIR / facts["device_slug"]
    path = save_results(results_dir, facts, "processes", payload)
    print(f"\n# Data-parallel pretraining ({facts['device']}, {payload['date']})\n")
    print("\n".join(f"- {n}" for n in notes) + "\n")
    print(markdown_table(["processes", "steps", "train s", "tokens/s", "speed-up", "final loss", "held-out loss"],
                         [[r["processes"], r.get("steps"), r.get("train_seconds"), r.get("tokens_per_second"),
                           r.get("speedup"), r.get("final_loss"), r.get("eval_loss")] for r in runs]))
    print(f"\nresults: {path}  (whole bench {payload['seconds']} s)")
    return 0 if all(r["status"] == "completed" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
