"""Evaluation bench: llmlab's `run_eval` against a plain one-question-at-a-time `model.generate` loop.

    python bench/eval.py                          # headline: Qwen2.5-0.5B shape, 100 questions, 512 new tokens
    python bench/eval.py --model DIR              # a real local model folder (weights + tokenizer)
    python bench/eval.py --scale 1,2,4 --levers fast
    python bench/eval.py --smoke                  # tiny Qwen2, 8 questions, 16 new tokens: checks the script on a CPU

Without --model the model is Qwen2.5-0.5B's architecture with RANDOM weights, saved in bf16 like
the real checkpoint. Random weights never produce EOS, so every row generates all max_new_tokens:
the worst case. Its tokenizer is GPT-2's BPE (no Qwen tokenizer on disk), widened with
placeholder entries to the model's 151,936 ids so that every generated id decodes to distinct
text; prompts still encode to GPT-2 ids only (< 50,257). Without --data the questions are
synthetic moral_scenarios-shaped Chinese questions (bench/mmmlu_synth.py).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

if __package__ in (None, ""):
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
from bench.mmmlu_synth import write_csv
from bench.report import render

JOBS = "bench.eval_jobs"
QWEN_TOKENIZER = Path(__file__).resolve().parent / "assets" / "qwen-tokenizer"
QWEN25_05B = dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                  num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768, rope_theta=1e6,
                  rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151643,
                  use_sliding_window=False)
TINY_QWEN2 = {**QWEN25_05B, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2}

LEVERS: dict[str, dict] = {
    "base": {},
    "batch50": {"batch_size": 50},  # smaller batches: each one still pays all 512 decode steps
    "batch25": {"batch_size": 25},
    "no-free-finished": {"free_finished": False},
    "static-cache": {"static_cache": True},
    "compile": {"static_cache": True, "compile": True},
    "compile-cudagraphs": {"static_cache": True, "compile": True, "cuda_graphs": True},
    "continuous": {"backend": "continuous"},
    "continuous-cudagraphs": {"backend": "continuous", "cuda_graphs": True},
    "stop-at-answer": {"stop_at_answer": True},
    "fp32": {"dtype": "fp32"},
    "logprob": {"mode": "logprob"},
}
SLOW_LEVERS = {"compile", "compile-cudagraphs"}  # a fresh machine compiles for ~30-60 s each
LEVER_SETS = {"fast": [k for k in LEVERS if k not in SLOW_LEVERS],
              "all": [k for k in LEVERS if k not in SLOW_LEVERS] + [k for k in LEVERS if k in SLOW_LEVERS],  # slow last
              "none": []}


def wide_gpt2_tokenizer_dir(vocab_size: int, gpt2_bpe: str | None) -> Path:
    """GPT-2's tokenizer with unreachable placeholder entries `<idN>` up to `vocab_size`.

    No merge produces them, so encoding is exactly GPT-2's; decoding a random model's ids
    above 50,256 gives `<idN>` instead of silently dropping them, so replies compare exactly.
    """
    out = CACHE_DIR / f"gpt2-tokenizer-wide{vocab_size}"
    if (out / "tokenizer.json").is_file():
        return out
    src = gpt2_tokenizer_dir(gpt2_bpe)
    tmp = Path(tempfile.mkdtemp(dir=CACHE_DIR))
    for item in src.iterdir():
        shutil.copy(item, tmp / item.name)
    spec = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = spec["model"]["vocab"]
    for i in range(max(vocab.values()) + 1, vocab_size):
        vocab[f"<id{i}>"] = i
    (tmp / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False), encoding="utf-8")
    try:
        tmp.replace(out)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def agreement(a: dict, b: dict) -> dict | None:
    """Questions both runs answered: same answer letter, and same reply text (token-exact with our tokenizer)."""
    if a.get("error") or b.get("error"):
        return None
    left = {x["index"]: x for x in a.get("answers", [])}
    pairs = [(left[x["index"]], x) for x in b.get("answers", []) if x["index"] in left]
    return {"compared": len(pairs), "same_answer": sum(p["pred"] == q["pred"] for p, q in pairs),
            "same_tokens": sum(p["output"] == q["output"] for p, q in pairs)}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny Qwen2, 8 questions, 16 new tokens, results under results/smoke/")
    ap.add_argument("--model", help="a local model folder with its tokenizer (default: random-weight Qwen2.5-0.5B shape)")
    ap.add_argument("--tail", action="store_true", help="a tiny random Qwen2 whose replies end at many different steps "
                    "(most after 3-15 tokens, a few at max_new_tokens): where dropping finished rows matters")
    ap.add_argument("--data", help="a local MMMLU CSV (e.g. mmlu_ZH-CN.csv); default: synthetic questions")
    ap.add_argument("--questions", type=int, default=100)
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--scale", default="1", help="multiples of --questions, e.g. 1,2,4")
    ap.add_argument("--gpt2-bpe", help="folder with GPT-2's encoder.json and vocab.bpe (synthetic model's tokenizer)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an EvalConfig field for every llmlab run")
    ap.add_argument("--baseline-questions", type=int, default=10, help="questions the baseline runs; scaled to all")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--batched-baseline", action="store_true",
                    help="also time the plain batched way: every question in one left-padded model.generate call, "
                         "in llmlab's dtype")
    ap.add_argument("--qwen-tokenizer", help="folder of the real Qwen2 tokenizer for the random model "
                    "(default: bench/assets/qwen-tokenizer when bench/qwen_tokenizer.py has built it)")
    ap.add_argument("--fp32-check", type=int, default=0, metavar="N",
                    help="also run llmlab in fp32 (all questions batched) and fp32 batch-1 generate on N of them")
    ap.add_argument("--levers", help="fast | all | none | comma-separated names: " + ", ".join(LEVERS))
    ap.add_argument("--lever", action="append", default=[], metavar="NAME:KEY=VALUE,...", help="a custom lever")
    ap.add_argument("--results-dir")
    ap.add_argument("--name", default="eval")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--deadline", type=float, help="seconds this whole command may take; later runs are skipped")
    return ap


def parse_value(text: str):
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        return text


def parse_pairs(body: str) -> dict:
    out = {}
    for pair in filter(None, body.split(",")):
        key, _, value = pair.partition("=")
        out[key.strip()] = parse_value(value.strip())
    return out


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    if "--smoke" in argv:  # defaults only: `--smoke --questions 4` still means 4
        parser.set_defaults(questions=8, max_new_tokens=16, baseline_questions=4, results_dir=str(RESULTS_DIR / "smoke"))
    args = parser.parse_args(argv)
    t_start = time.monotonic()
    scales = parse_scales(args.scale)
    overrides = parse_pairs(",".join(args.set))
    names = LEVER_SETS.get(args.levers or "none", (args.levers or "").split(","))
    unknown = [n for n in names if n not in LEVERS]
    if unknown:
        raise SystemExit(f"unknown lever(s) {', '.join(unknown)}; known: {', '.join(LEVERS)} (or fast, all, none)")
    levers = [(n, LEVERS[n]) for n in names]
    levers += [(spec.partition(":")[0], parse_pairs(spec.partition(":")[2])) for spec in args.lever]
    if levers and levers[0][0] != "base":
        levers.insert(0, ("base", {}))
    facts = device_facts()
    WORK_DIR.mkdir(parents=True, exist_ok=True)

    child = ChildRunner(JOBS, args.timeout, args.deadline, {"max_new_tokens": args.max_new_tokens}, t_start)

    notes = []
    if not facts["hardware"]["gpus"]:
        notes.append("CPU run: checks the script only; these figures are not a GPU claim.")
    if args.model:
        model_dir = str(Path(args.model).resolve())
        notes.append(f"Model: {model_dir} (local folder, its own tokenizer)")
    elif args.tail:
        model_dir = str(CACHE_DIR / "qwen2-tiny-tail")
        built = child({"engine": "build_tail_model", "model_dir": model_dir}, "build tail model")
        if built.get("error"):
            raise SystemExit(built["error"])
        notes.append("Model: tiny Qwen2 (2 layers, hidden 64, GPT-2 BPE) with RANDOM weights skewed towards EOS "
                     "(seed 3, skew 2): most replies end after 3-15 tokens, a few run to max_new_tokens, the tail case.")
    else:
        shape = TINY_QWEN2 if args.smoke else QWEN25_05B
        qwen_tok = Path(args.qwen_tokenizer) if args.qwen_tokenizer else QWEN_TOKENIZER
        use_qwen = (qwen_tok / "tokenizer.json").is_file()
        name = ("qwen2-tiny-random" if args.smoke else "qwen2.5-0.5b-shape-random") + ("-qwentok" if use_qwen else "")
        tok_dir = qwen_tok if use_qwen else wide_gpt2_tokenizer_dir(shape["vocab_size"], args.gpt2_bpe)
        model_dir = str(CACHE_DIR / name)
        built = child({"engine": "build_model", "config": shape, "tokenizer_dir": str(tok_dir), "model_dir": model_dir},
                      "build random model")
        if built.get("error"):
            raise SystemExit(built["error"])
        notes.append(("Model: tiny Qwen2 (2 layers, hidden 64)" if args.smoke else
                      "Model: Qwen2.5-0.5B architecture (hidden 896, 24 layers, 14 heads, 2 KV heads, intermediate 4864, "
                      "vocab 151936, tied embeddings, rope theta 1e6)") + " with RANDOM weights, saved in bf16; "
                     "random weights never emit EOS, so every row generates all max_new_tokens (the worst case).")
        notes.append(f"Tokenizer: the real Qwen2 BPE ({qwen_tok}, built by bench/qwen_tokenizer.py from dashscope's "
                     "qwen.tiktoken), so prompts have the real task's token counts." if use_qwen else
                     "Tokenizer: GPT-2 BPE (no Qwen tokenizer on disk), widened with unreachable <idN> entries to "
                     "151,936 ids so replies compare token-exactly; prompts encode to GPT-2 ids (< 50,257), about 3x "
                     "as many prompt tokens as Qwen's tokenizer would give for Chinese.")
    child.defaults["model_dir"] = model_dir  # every later job evaluates this folder
    notes.append(f"Data: {args.data}" if args.data else
                 "Data: synthetic moral_scenarios-shaped Chinese questions (bench/mmmlu_synth.py), not the real MMMLU rows.")
    notes.append("Baseline: AutoModelForCausalLM.from_pretrained(dir) with its default dtype ('auto': the checkpoint's "
                 "bf16), then model.generate(**enc, max_new_tokens=N) one question at a time, default generation config.")

    def data_csv(n: int) -> str:
        if args.data:
            return str(Path(args.data).resolve())
        return str(write_csv(CACHE_DIR / "data" / f"mmmlu-synthetic-{n}.csv", n))

    blocks = []
    for scale in scales:
        n = args.questions * scale
        data = data_csv(n)
        block = {"scale": scale, "questions": n, "data": data}
        block["llmlab"] = child({"engine": "llmlab", "data": data, "questions": n, "overrides": overrides},
                                f"llmlab {scale}x")
        if not args.skip_baseline and scale == scales[0]:
            block["baseline"] = child({"engine": "baseline", "data": data, "questions": n,
                                       "subset": min(args.baseline_questions, n)}, f"baseline {scale}x")
        elif blocks and blocks[0].get("baseline") and not blocks[0]["baseline"].get("error"):
            # One question at a time costs the same per question at any count: scale the first measurement.
            first = blocks[0]["baseline"]
            per_q = first["measured_generate_seconds"] / (first.get("scaled_from_questions") or first["questions"])
            block["baseline"] = {"engine": "baseline", "estimated_from_scale": blocks[0]["scale"],
                                 "scaled_from_questions": first.get("scaled_from_questions") or first["questions"],
                                 "generate_seconds": round(per_q * n, 3),
                                 "total_seconds": round(first["load_seconds"] + per_q * n, 3),
                                 "tokens_per_second": first["tokens_per_second"], "answers": first["answers"]}
        if block.get("baseline"):
            block["agreement"] = agreement(block["baseline"], block["llmlab"])
        if args.batched_baseline and scale == scales[0]:
            # In llmlab's dtype, so the comparison is of the batching alone, not of bf16 against fp32.
            torch_dtype = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}.get(block["llmlab"].get("dtype"))
            block["batched_baseline"] = child({"engine": "batched_baseline", "data": data, "questions": n,
                                               "dtype": torch_dtype}, f"batched baseline {scale}x")
            block["batched_agreement"] = agreement(block["batched_baseline"], block["llmlab"])
        blocks.append(block)

    fp32 = None
    if args.fp32_check:
        n = args.questions
        ours = child({"engine": "llmlab", "data": data_csv(n), "questions": n, "overrides": {**overrides, "dtype": "fp32"}},
                     "llmlab fp32")
        ref = child({"engine": "baseline", "data": data_csv(n), "questions": n, "subset": args.fp32_check,
                     "dtype": "float32"}, "batch-1 fp32")
        fp32 = agreement(ref, ours) or {"error": ours.get("error") or ref.get("error")}
        fp32["llmlab_generate_seconds"] = ours.get("generate_seconds")

    lever_runs = []
    for name, change in levers:
        run = child({"engine": "llmlab", "data": data_csv(args.questions), "questions": args.questions,
                     "overrides": {**overrides, **change}}, f"lever {name}")
        lever_runs.append({"lever": name, "overrides": change, **run})
    base = next((r for r in lever_runs if r["lever"] == "base"), None)
    for run in lever_runs:
        run["agreement"] = agreement(base, run) if base else None

    payload = {"bench": "eval", "date": date.today().isoformat(), "facts": facts, "notes": notes,
               "options": vars(args), "llmlab_overrides": overrides, "scales": blocks, "fp32_check": fp32,
               "levers": lever_runs, "wall_seconds": round(time.monotonic() - t_start, 1)}
    for run in [*(b.get(k) for b in blocks for k in ("llmlab", "baseline", "batched_baseline")), *lever_runs]:
        if run:
            run.pop("answers", None)  # replies are compared above; the file keeps the figures
    path = save_results(Path(args.results_dir) if args.results_dir else RESULTS_DIR, facts, args.name, payload)
    print("\n" + render(payload) + f"\n\nresults: {path}  (whole bench {payload['wall_seconds']} s)", flush=True)
    return payload


if __name__ == "__main__":
    main()
