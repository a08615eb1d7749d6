"""Tokenizing throughput against --num-proc: a corpus into token shards, and fine-tuning examples into theirs.

    python bench/tokenize_speed.py                          # 40 MB of text and 100,000 examples; 1, 2 and 4 processes
    python bench/tokenize_speed.py --corpus-mb 200 --examples 800000 --num-proc 1,2,4,8
    python bench/tokenize_speed.py --smoke                  # 2 MB and 4,000 examples: checks the script

Each count runs in a fresh process, as `llmlab pretrain|finetune --num-proc N` would tokenize:
`core.train.tokens.write_corpus_shards` streams a generated BookCorpus-shaped corpus through GPT-2's
BPE into token shards; `core.finetune.examples.encoded_examples` encodes exam-shaped prompt/target
rows (prompt tokens masked, the target kept whole) into theirs. The figure is text or examples per
second of wall time, worker start-up included (processes are spawned: a second or two each).
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

CHILD = r"""
import json, sys, time
from pathlib import Path
what, source, out, num_proc = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
from core.lm.tokenizers import bundled_gpt2_tokenizer
tok = bundled_gpt2_tokenizer()
if what == "corpus":
    from core.corpus import CorpusStream
    from core.shards import open_shards
    from core.train.tokens import write_corpus_shards
    t = time.perf_counter()
    write_corpus_shards(out, CorpusStream(source, 10**9, 0), tok, num_proc)
    seconds = time.perf_counter() - t
    tokens = len(open_shards(out, verify=False)["train"])
    print(json.dumps({"seconds": seconds, "tokens": tokens}))
else:
    from core.finetune.examples import encoded_examples
    rows = [json.loads(line) for line in open(source, encoding="utf-8")]
    t = time.perf_counter()
    examples, cut = encoded_examples(tok, rows, 512, num_proc)
    seconds = time.perf_counter() - t
    print(json.dumps({"seconds": seconds, "examples": len(examples), "tokens": int(examples.starts[-1])}))
"""


def write_examples(path: Path, n: int) -> None:
    """Exam-shaped rows: a question with four options as the prompt, "X) option" as the target."""
    from core.synthetic import bookcorpus_like_rows

    sentences = bookcorpus_like_rows(n + 4, seed=11)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(n):
            options = "\n".join(f"{k}. {sentences[i + j + 1]}" for j, k in enumerate("ABCD"))
            prompt = f"The following is a question about stories.\n\n{sentences[i]}\n{options}\nAnswer:"
            fh.write(json.dumps({"prompt": prompt, "target": f" {'ABCD'[i % 4]}) {sentences[i + 1 + i % 4]}"}) + "\n")


def child(what: str, source: Path, out: Path, num_proc: int, work: Path, timeout: float) -> dict:
    env = {**offline_env(), "LLMLAB_CACHE_DIR": str(work / f"cache-{what}-{num_proc}")}
    done = subprocess.run([sys.executable, "-c", CHILD, what, str(source), str(out), str(num_proc)], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        return {"status": "failed", "error": (done.stderr.strip().splitlines() or ["?"])[-1]}
    return {"status": "completed", **json.loads(done.stdout.strip().splitlines()[-1])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus-mb", type=float, default=40)
    ap.add_argument("--examples", type=int, default=100_000)
    ap.add_argument("--num-proc", default="1,2,4")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--results-dir", default=None)
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args(argv)
    if args.smoke:
        args.corpus_mb, args.examples, args.num_proc = 2, 4000, "1,2"
        args.results_dir = args.results_dir or str(RESULTS_DIR / "smoke")
    from bench.corpus_memory import write_corpus

    facts = device_facts()
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tokenize-", dir=WORK_DIR))
    t0 = time.perf_counter()
    runs = []
    try:
        corpus, examples = work / "corpus.txt", work / "examples.jsonl"
        rows = write_corpus(corpus, int(args.corpus_mb * 2**20), seed=3)
        write_examples(examples, args.examples)
        text_mb = corpus.stat().st_size / 2**20
        for n in [int(c) for c in args.num_proc.split(",")]:
            print(f"[bench] {n} process{'es' if n > 1 else ''} ...", flush=True)
            r = child("corpus", corpus, work / f"shards-{n}", n, work, args.timeout)
            runs.append({"what": f"corpus ({text_mb:.0f} MB, {rows:,} rows)", "num_proc": n, **r,
                         "mb_per_second": round(text_mb / r["seconds"], 2) if r.get("seconds") else None})
            r = child("examples", examples, work / f"examples-{n}", n, work, args.timeout)
            runs.append({"what": f"fine-tuning examples ({args.examples:,})", "num_proc": n, **r,
                         "examples_per_second": round(r["examples"] / r["seconds"]) if r.get("seconds") else None})
            print(f"[bench]   {runs[-2]}\n[bench]   {runs[-1]}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cores = facts["hardware"]["cpu_cores_logical"]
    notes = [f"GPT-2's BPE (the fast tokenizer), {cores} logical cores; each count a fresh process, spawned workers' "
             f"start-up included.",
             "corpus: core.train.tokens.write_corpus_shards (rows streamed from the file, ids written to token shards); "
             "examples: core.finetune.examples.encoded_examples at --max-length 512."]
    payload = {"bench": "tokenize", "date": date.today().isoformat(), "facts": facts, "notes": notes,
               "options": vars(args), "runs": runs, "seconds": round(time.perf_counter() - t0, 1)}
    path = save_results(Path(args.results_dir) if args.results_dir else RESULTS_DIR / facts["device_slug"], facts,
                        "tokenize", payload)
    print(f"\n# Tokenizing throughput ({facts['device']}, {payload['date']})\n")
    print("\n".join(f"- {n}" for n in notes) + "\n")
    print(markdown_table(["input", "--num-proc", "seconds", "tokens", "MB/s", "examples/s"],
                         [[r["what"], r["num_proc"], r.get("seconds"), r.get("tokens"), r.get("mb_per_second"),
                           r.get("examples_per_second")] for r in runs]))
    print(f"\nresults: {path}  (whole bench {payload['seconds']} s)")
    return 0 if all(r["status"] == "completed" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
