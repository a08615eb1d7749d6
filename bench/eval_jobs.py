"""One evaluation run per process, started by bench/eval.py: llmlab's run_eval, the one-at-a-time baseline,
or the plain batched baseline (one left-padded `model.generate` over every question).

Both report:
  total_seconds     questions CSV + weights on disk -> every answer, wall clock inside the process;
  process_seconds   from process start (imports and CUDA start-up included);
  generate_seconds  generation only;
  answers           per question: the reply text, its answer letter and new-token count.
A baseline on a subset of the questions is scaled to all of them by its mean time per question.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from bench.common import cuda_sync, peak_memory_mib, process_start, read_job, write_result


def _answers(rows: list[dict]) -> list[dict]:
    return [{"index": r["index"], "pred": r["pred"], "output": r["output"], "new_tokens": r["new_tokens"]}
            for r in sorted(rows, key=lambda r: r["index"])]


def run_llmlab(job: dict) -> dict:
    """core.eval.run.run_eval, as `llmlab eval` calls it, timed from outside."""
    from core.eval.run import EvalConfig, run_eval

    config = EvalConfig(model=job["model_dir"], data=job["data"], subject="moral_scenarios", limit=job["questions"],
                        max_new_tokens=job["max_new_tokens"], out=str(Path(job["out"]) / "run"), **job.get("overrides", {}))
    t0 = time.perf_counter()
    summary = run_eval(config)
    cuda_sync()
    total = time.perf_counter() - t0
    process_seconds = time.time() - process_start()
    rows = [json.loads(line) for line in open(Path(config.out) / "results.jsonl", encoding="utf-8") if line.strip()]
    return {
        "engine": "llmlab", "status": summary["status"], "total_seconds": round(total, 3),
        "process_seconds": round(process_seconds, 3), "load_seconds": summary["load_seconds"],
        "generate_seconds": summary["generate_seconds"], "new_tokens": summary["tokens_generated"],
        "tokens_per_second": summary["tokens_per_second"], "peak_memory_mib": peak_memory_mib(),
        "accuracy": summary["accuracy"], "questions": summary["n"], "batch_size": summary["batch_size"],
        "dtype": summary["dtype"], "optimizations": summary["optimizations"], "prompt_tokens": summary["prompt_tokens"],
        "config": {k: v for k, v in vars(config).items() if k != "out"}, "answers": _answers(rows),
    }


def run_baseline(job: dict) -> dict:
    """for each question: model.generate(**enc, max_new_tokens=512), default dtype and generation config."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.mmmlu import extract_answer, load_csv, select_questions

    device = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.perf_counter()
    questions, _ = select_questions(load_csv(job["data"]), "moral_scenarios", job["questions"])
    subset = questions[:job.get("subset") or len(questions)]
    tok = AutoTokenizer.from_pretrained(job["model_dir"])
    kwargs = {"dtype": getattr(torch, job["dtype"])} if job.get("dtype") else {}  # none given: from_pretrained's default
    model = AutoModelForCausalLM.from_pretrained(job["model_dir"], **kwargs).to(device)
    cuda_sync()
    t_loaded = time.perf_counter()
    answers, new_tokens = [], 0
    for q in subset:
        enc = tok(q.prompt, return_tensors="pt").to(device)
        out = model.generate(**enc, max_new_tokens=job["max_new_tokens"])
        new = out[0, enc["input_ids"].shape[1]:]
        text = tok.decode(new, skip_special_tokens=True)
        answers.append({"index": q.index, "pred": extract_answer(text), "output": text, "new_tokens": int(new.numel()),
                        "correct": extract_answer(text) == q.gold})
        new_tokens += int(new.numel())
    cuda_sync()
    t_end = time.perf_counter()
    generate_measured = t_end - t_loaded
    scale = len(questions) / len(subset)
    generate = generate_measured * scale  # one question at a time: time grows with the question count
    return {
        "engine": "baseline", "status": "completed", "total_seconds": round(t_loaded - t0 + generate, 3),
        "process_seconds": round(time.time() - process_start() + generate - generate_measured, 3),
        "load_seconds": round(t_loaded - t0, 3), "generate_seconds": round(generate, 3),
        "measured_generate_seconds": round(generate_measured, 3),
        "scaled_from_questions": len(subset) if len(subset) < len(questions) else None,
        "new_tokens": round(new_tokens * scale), "tokens_per_second": round(new_tokens / generate_measured, 1),
        "peak_memory_mib": peak_memory_mib(), "accuracy": sum(a["correct"] for a in answers) / len(answers),
        "questions": len(questions), "batch_size": 1, "dtype": str(model.dtype).replace("torch.", ""),
        "answers": answers,
    }


def run_batched_baseline(job: dict) -> dict:
    """The plain batched way: every question in one left-padded model.generate call (or batches of job["batch"])."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.mmmlu import extract_answer, load_csv, select_questions

    device = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.perf_counter()
    questions, _ = select_questions(load_csv(job["data"]), "moral_scenarios", job["questions"])
    tok = AutoTokenizer.from_pretrained(job["model_dir"], padding_side="left")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    kwargs = {"dtype": getattr(torch, job["dtype"])} if job.get("dtype") else {}
    model = AutoModelForCausalLM.from_pretrained(job["model_dir"], **kwargs).to(device)
    cuda_sync()
    t_loaded = time.perf_counter()
    batch = job.get("batch") or len(questions)
    answers, new_tokens = [], 0
    eos = model.generation_config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
    for i in range(0, len(questions), batch):
        chunk = questions[i:i + batch]
        enc = tok([q.prompt for q in chunk], return_tensors="pt", padding=True).to(device)
        out = model.generate(**enc, max_new_tokens=job["max_new_tokens"], pad_token_id=tok.pad_token_id)
        for q, row in zip(chunk, out[:, enc["input_ids"].shape[1]:].tolist()):
            end = next((k + 1 for k, t in enumerate(row) if t in eos), len(row))  # up to its EOS, as generate stops it
            text = tok.decode(row[:end], skip_special_tokens=True)
            answers.append({"index": q.index, "pred": extract_answer(text), "output": text, "new_tokens": end,
                            "correct": extract_answer(text) == q.gold})
            new_tokens += end
    cuda_sync()
    generate = time.perf_counter() - t_loaded
    return {
        "engine": "batched_baseline", "status": "completed", "total_seconds": round(time.perf_counter() - t0, 3),
        "process_seconds": round(time.time() - process_start(), 3), "load_seconds": round(t_loaded - t0, 3),
        "generate_seconds": round(generate, 3), "new_tokens": new_tokens,
        "tokens_per_second": round(new_tokens / generate, 1) if generate else None, "peak_memory_mib": peak_memory_mib(),
        "accuracy": sum(a["correct"] for a in answers) / len(answers), "questions": len(questions), "batch_size": batch,
        "dtype": str(model.dtype).replace("torch.", ""), "answers": answers,
    }


def build_tail_model(job: dict) -> dict:
    """The eval demo's recipe with a milder skew (seed 3, skew 2): a tiny random Qwen2 whose replies end at
    EOS after 3 to 15 tokens for most questions and run to max_new_tokens for a few: the tail case."""
    from core.lm.demo import build_tiny_qwen2, demo_skew_tokens, gpt2_tokenizer

    out = Path(job["model_dir"])
    if (out / "config.json").is_file():
        return {"model_dir": str(out), "built": False}
    tok = gpt2_tokenizer()
    model = build_tiny_qwen2(tok, seed=3, skew_tokens=demo_skew_tokens(tok), skew=2.0)
    tmp = Path(str(out) + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    os.replace(tmp, out)
    return {"model_dir": str(out), "built": True}


def build_random_model(job: dict) -> dict:
    """Qwen2.5-0.5B's architecture (or a tiny one) with random weights, saved like a checkpoint (bf16)."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig, Qwen2Config

    from bench.common import CACHE_DIR

    out = Path(job["model_dir"])
    if (out / "config.json").is_file():
        return {"model_dir": str(out), "built": False}
    t0 = time.perf_counter()
    cfg = Qwen2Config(**job["config"])
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # random init of 494M parameters is quicker there
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.generation_config = GenerationConfig(bos_token_id=cfg.bos_token_id, eos_token_id=cfg.eos_token_id,
                                               do_sample=False)
    tmp = Path(str(out) + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    for name in os.listdir(job["tokenizer_dir"]):
        shutil.copy(Path(job["tokenizer_dir"]) / name, tmp / name)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out)
    return {"model_dir": str(out), "built": True, "seconds": round(time.perf_counter() - t0, 2),
            "n_params": sum(p.numel() for p in model.parameters())}


def main(argv: list[str]) -> None:
    job = read_job(argv)
    engines = {"llmlab": run_llmlab, "baseline": run_baseline, "batched_baseline": run_batched_baseline,
               "build_model": build_random_model, "build_tail_model": build_tail_model}
    try:
        result = engines[job["engine"]](job)
    finally:
        if job.get("out") and not job.get("keep_runs"):
            shutil.rmtree(job["out"], ignore_errors=True)
    write_result(job, result)


if __name__ == "__main__":
    main(sys.argv)
