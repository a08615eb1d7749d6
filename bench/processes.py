"""Pretraining on several processes, data-parallel (DDP) or sharded (FSDP): tokens/s and peak memory per rank
against the number of processes, same global batch, same steps.

    python bench/processes.py                          # CPU: 1 process, 2 DDP and 2 FSDP gloo processes, tiny model
    python bench/processes.py --model-size default --data core/demo_data/demo_corpus.txt --tokenizer DIR --counts 1,2,4,8
    python bench/processes.py --smoke                  # a few steps: checks the script

Each count is one `llmlab pretrain --processes N` in a fresh process, exactly the command a
user runs (torch's elastic launcher, DistributedDataParallel, gloo on CPU, NCCL on GPUs), and with
--fsdp (the default) each count above one runs again with `--fsdp` (torch's FSDP2). The global batch
(`--batch-size`) stays the same, so every run has the same steps and should reach the same losses
(dropout 0: the same up to float rounding); only the time and the memory change. The table gives
tokens/s (all ranks together), the speed-up over one process, each rank's peak memory (resident set
on CPU, allocated GPU memory on a GPU, from the run's summary), and the final and held-out losses,
which show the runs trained the same model.
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


def llmlab(args: list[str], timeout: float, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core.cli", *args], cwd=REPO_ROOT, env={**offline_env(), **(env or {})},
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
    ap.add_argument("--max-steps", type=int, default=0, help="stop every run after N steps (0: the epochs decide)")
    ap.add_argument("--model-size", default="tiny")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--results-dir", default=None)
    ap.add_argument("--smoke", action="store_true", help="a few hundred rows, one epoch, vocabulary 600")
    ap.add_argument("--malloc-mmap-threshold", type=int, default=None, metavar="BYTES",
                    help="glibc's MALLOC_MMAP_THRESHOLD_ for the ranks: a fixed threshold returns large freed blocks to "
                         "the OS, so peak RSS shows what a rank holds rather than what glibc kept (CPU only)")
    ap.add_argument("--fsdp", action=argparse.BooleanOptionalAction, default=True,
                    help="also run each count above one with --fsdp")
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
    modes = [(n, False) for n in counts] + ([(n, True) for n in counts if n > 1] if args.fsdp else [])
    for n, fsdp in modes:
        out = work / f"p{n}{'-fsdp' if fsdp else ''}"
        mode = "FSDP" if fsdp else ("DDP" if n > 1 else "one process")
        cmd = ["pretrain", "--data", args.data, "--rows", str(args.rows), "--eval-rows", str(args.eval_rows),
               "--epochs", str(args.epochs), "--tokenizer", tokenizer, "--model-size", args.model_size,
               "--batch-size", str(args.batch_size), "--block-size", str(args.block_size), "--dropout", "0",
               "--sample-tokens", "0", "--max-steps", str(args.max_steps), "--out", str(out),
               *(["--processes", str(n)] if n > 1 else []),
               *(["--fsdp"] if fsdp else [])]
        print(f"[bench] {n} process{'es' if n > 1 else ''} ({mode}) ...", flush=True)
        started = time.perf_counter()
        done = llmlab(cmd, args.timeout, {"MALLOC_MMAP_THRESHOLD_": str(args.malloc_mmap_threshold)}
                      if args.malloc_mmap_threshold else None)
        wall = time.perf_counter() - started
        if done.returncode != 0 or not (out / "summary.json").is_file():
            runs.append({"processes": n, "mode": mode, "status": "failed",
                         "error": done.stderr.strip().splitlines()[-1:] or None})
            continue
        from core.runs import read_json

        s = read_json(out / "summary.json")
        memory = s.get("rank_memory") or []
        key = "peak_gpu_mib" if gpus else "peak_rss_mib"
        runs.append({"processes": n, "mode": mode, "status": s["status"], "world_size": s.get("world_size"),
                     "steps": s["steps"], "fsdp": s.get("fsdp"), "rank_memory": memory,
                     "peak_memory_per_rank_mib": [m.get(key) for m in memory],
                     "train_seconds": s["train_seconds"], "total_seconds": s["total_seconds"], "wall_seconds": round(wall, 3),
                     "tokens_per_second": s["tokens_per_second"], "final_loss": s["final_loss"], "eval_loss": s["eval_loss"],
                     "optimizations": s["optimizations"], "device": s["device"]})
    base = next((r["tokens_per_second"] for r in runs if r["processes"] == 1 and r.get("tokens_per_second")), None)
    for r in runs:
        r["speedup"] = round(r["tokens_per_second"] / base, 3) if base and r.get("tokens_per_second") else None
    kind = "CPU (gloo)" if not gpus else "GPU (NCCL)"
    budget = f" (--max-steps {args.max_steps})" if args.max_steps else ""
    notes = [f"{args.model_size} model, {args.rows} rows of {Path(args.data).name}, {args.epochs} epochs{budget}, global batch "
             f"{args.batch_size} x {args.block_size} tokens for every count, dropout 0.",
             f"{kind} processes; tokens/s counts all ranks' training tokens over the training loop's time."]
    if not gpus:
        notes.append(f"CPU run on {facts['hardware']['cpu_cores_logical']} cores: the processes share those cores, "
                     f"so this measures the data-parallel path's overhead, not a GPU speed-up.")
    payload = {"bench": "processes", "date": date.today().isoformat(), "facts": facts, "notes": notes,
               "options": vars(args), "runs": runs, "seconds": round(time.perf_counter() - t0, 1)}
    results_dir = Path(args.results_dir) if args.results_dir else RESULTS_DIR / facts["device_slug"]
    name = "processes" if args.model_size == "tiny" else f"processes-{args.model_size}"
    if args.malloc_mmap_threshold:
        name += "-mmap-threshold"
        notes.append(f"MALLOC_MMAP_THRESHOLD_={args.malloc_mmap_threshold} for every rank: glibc then returns large "
                     f"freed blocks to the OS, so peak RSS counts what a rank holds, not freed memory glibc kept.")
    path = save_results(results_dir, facts, name, payload)
    print(f"\n# Pretraining on several processes ({facts['device']}, {payload['date']})\n")
    print("\n".join(f"- {n}" for n in notes) + "\n")
    memory_label = "peak GPU MiB per rank" if gpus else "peak RSS MiB per rank"
    print(markdown_table(["processes", "mode", "steps", "train s", "tokens/s", "speed-up", memory_label, "final loss",
                          "held-out loss"],
                         [[r["processes"], r.get("mode"), r.get("steps"), r.get("train_seconds"), r.get("tokens_per_second"),
                           r.get("speedup"), " / ".join(f"{m:,.0f}" for m in r.get("peak_memory_per_rank_mib") or [] if m),
                           r.get("final_loss"), r.get("eval_loss")] for r in runs]))
    print(f"\nresults: {path}  (whole bench {payload['seconds']} s)")
    return 0 if all(r["status"] == "completed" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
