"""Peak memory against corpus size: pretraining a generated 10 MB and 1 GB corpus with --max-steps.

    python bench/corpus_memory.py                       # 10 MB and 1 GB (about 10 minutes on 2 CPU cores)
    python bench/corpus_memory.py --sizes 10MB,100MB    # any sizes
    python bench/corpus_memory.py --smoke               # 1 MB and 3 MB: checks the script

For each size a corpus of BookCorpus-shaped rows (core.synthetic) is generated under the bench's
git-ignored work folder, then `llmlab pretrain` runs on all of its rows twice, each in a fresh process
with a token cache of its own: **cold** (rows streamed through the tokenizer into token shards, then
--max-steps steps) and **warm** (the shards read back and checked, then the same steps). A corpus above
16M training tokens is trained from the memory map block by block, a smaller one packed in memory as
before; the table says which. Peak memory is the process's peak resident set (getrusage ru_maxrss, as
the run's summary records it for each rank). Everything generated is deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` and `core` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO_ROOT, RESULTS_DIR, WORK_DIR, device_facts, markdown_table, offline_env, save_results

UNITS = {"KB": 2**10, "MB": 2**20, "GB": 2**30}


def parse_size(text: str) -> int:
    text = text.strip().upper()
    for unit, factor in UNITS.items():
        if text.endswith(unit):
            return int(float(text[:-len(unit)]) * factor)
    return int(text)


def write_corpus(path: Path, size: int, seed: int = 0) -> int:
    """BookCorpus-shaped rows until the file holds `size` bytes; returns the rows written."""
    from core.synthetic import bookcorpus_like_rows

    rows, written, block = 0, 0, 0
    with open(path, "w", encoding="utf-8") as fh:
        while written < size:
            batch = bookcorpus_like_rows(50_000, seed=seed * 1_000_003 + block)
            text = "\n".join(batch) + "\n"
            if written + len(text) > size:  # the last batch only in part
                keep = []
                for row in batch:
                    if written + len(row) + 1 > size:
                        break
                    keep.append(row)
                    written += len(row) + 1
                fh.write("".join(r + "\n" for r in keep))
                rows += len(keep)
                break
            fh.write(text)
            written += len(text)
            rows += len(batch)
            block += 1
    return rows


def pretrain(corpus: Path, rows: int, out: Path, cache: Path, args) -> dict:
    cmd = [sys.executable, "-m", "core.cli", "pretrain", "--data", str(corpus), "--rows", str(rows), "--eval-rows", "500",
           "--tokenizer", "gpt2-bundled", "--model-size", "tiny", "--block-size", "128", "--batch-size", "8",
           "--max-steps", str(args.max_steps), "--epochs", "1", "--sample-tokens", "0", "--num-proc", str(args.num_proc),
           "--save-minutes", "0", "--out", str(out)]
    env = {**offline_env(), "LLMLAB_CACHE_DIR": str(cache)}
    started = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=args.timeout)
    wall = time.perf_counter() - started
    if done.returncode != 0 or not (out / "summary.json").is_file():
        return {"status": "failed", "error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    s = json.loads((out / "summary.json").read_text())
    return {"status": s["status"], "peak_rss_mib": s["rank_memory"][0]["peak_rss_mib"], "steps": s["steps"],
            "train_tokens": s["tokens_per_epoch"], "tokenize_seconds": s["phases"].get("tokenize"),
            "train_seconds": s["train_seconds"], "wall_seconds": round(wall, 1), "token_cache": s["token_cache"],
            "memory_mapped": any("memory-mapped" in o for o in s["optimizations"]), "final_loss": s["final_loss"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10MB,1GB")
    ap.add_argument("--max-steps", type=int, default=20)
    ap.add_argument("--num-proc", type=int, default=2, help="tokenizing processes")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--results-dir", default=None)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    if args.smoke:
        args.sizes, args.max_steps = "1MB,3MB", 3
        args.results_dir = args.results_dir or str(RESULTS_DIR / "smoke")
    facts = device_facts()
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="corpus-memory-", dir=WORK_DIR))
    t0 = time.perf_counter()
    runs = []
    try:
        for label in args.sizes.split(","):
            size = parse_size(label)
            corpus = work / f"corpus-{label}.txt"
            started = time.perf_counter()
            rows = write_corpus(corpus, size)
            print(f"[bench] {label}: {rows:,} rows generated in {time.perf_counter() - started:.0f} s", flush=True)
            cache = work / f"cache-{label}"
            for phase in ("cold", "warm"):
                print(f"[bench] {label} {phase} ...", flush=True)
                result = pretrain(corpus, rows, work / f"run-{label}-{phase}", cache, args)
                runs.append({"corpus": label, "bytes": size, "rows": rows, "run": phase, **result})
                print(f"[bench]   {result}", flush=True)
            shard_bytes = sum(p.stat().st_size for p in cache.rglob("*.bin"))
            for r in runs[-2:]:
                r["shard_bytes"] = shard_bytes
            corpus.unlink()
            shutil.rmtree(cache, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    notes = [f"tiny GPT-2, blocks of 128, batch 8, --max-steps {args.max_steps}, every row of the corpus for training "
             f"(500 held out), --num-proc {args.num_proc}; each run a fresh process with its own token cache.",
             "cold: rows streamed from the file through the tokenizer into token shards, then trained; warm: the shards "
             "read back (sizes, headers and sha256 checked), then trained.",
             "peak RSS: the process's ru_maxrss (as summary.json's rank_memory records it); tokenizing workers are "
             "processes of their own and not in it."]
    payload = {"bench": "corpus_memory", "date": date.today().isoformat(), "facts": facts, "notes": notes,
               "options": vars(args), "runs": runs, "seconds": round(time.perf_counter() - t0, 1)}
    path = save_results(Path(args.results_dir) if args.results_dir else RESULTS_DIR / facts["device_slug"], facts,
                        "corpus-memory", payload)
    print(f"\n# Peak memory against corpus size ({facts['device']}, {payload['date']})\n")
    print("\n".join(f"- {n}" for n in notes) + "\n")
    print(markdown_table(["corpus", "rows", "training tokens", "run", "blocks", "tokenize s", "train s", "peak RSS MiB"],
                         [[r["corpus"], r["rows"], r.get("train_tokens"), r["run"],
                           "memory map" if r.get("memory_mapped") else "in memory", r.get("tokenize_seconds"),
                           r.get("train_seconds"), r.get("peak_rss_mib")] for r in runs]))
    print(f"\nresults: {path}  (whole bench {payload['seconds']} s)")
    return 0 if all(r["status"] == "completed" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
