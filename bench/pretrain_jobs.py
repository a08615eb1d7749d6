"""One pretraining run per process, started by bench/pretrain.py: llmlab's pipeline or the HF Trainer baseline.

Both runs report the same figures, measured the same way:
  total_seconds    rows on disk -> saved model, wall clock inside the process (imports excluded);
  process_seconds  process start -> saved model (imports and CUDA start-up included);
  train_seconds    the training loop itself;
  heldout_loss     next-token loss on the same held-out rows, each row alone (no packing, no
                   padding in the loss), by the same code for both models, loaded from disk in fp32.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from bench.common import cuda_sync, peak_memory_mib, peak_rss_mib, process_start, read_job, write_result

HELDOUT_BATCH = 64


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def heldout_loss(model_dir: str, tokenizer_dir: str, rows: list[str]) -> float | None:
    """Mean next-token loss over the held-out rows, each row its own sequence (the usual HF way)."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not rows:
        return None
    device = _device()
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).to(device).eval()
    total = torch.zeros((), dtype=torch.float64, device=device)
    count = 0
    with torch.no_grad():
        for i in range(0, len(rows), HELDOUT_BATCH):
            enc = tok(rows[i:i + HELDOUT_BATCH], return_tensors="pt", padding=True).to(device)
            labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)[:, 1:]
            logits = model(**enc, use_cache=False).logits[:, :-1].float()
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                     ignore_index=-100, reduction="sum").double()
            count += int((labels != -100).sum())
    return round(float(total) / max(count, 1), 5)


def _figures(train_seconds: float | None, tokens: int | None, n_params: int) -> dict:
    """tokens/s and MFU = 6·N·tokens / time / device peak (dense bf16), N counting every parameter."""
    import torch

    from core.hardware import peak_bf16_flops

    out = {"tokens_per_second": None, "mfu": None}
    if not train_seconds or not tokens:
        return out
    tps = tokens / train_seconds
    out["tokens_per_second"] = round(tps, 1)
    if torch.cuda.is_available():
        peak = peak_bf16_flops(torch.cuda.get_device_name())
        if peak:
            out["mfu"] = round(6 * n_params * tps / peak, 4)
    return out


# ---------------------------------------------------------------------------------------------
# llmlab


def fill_token_cache(data: str, rows: int, eval_rows: int, tokenizer_dir: str, cache_dir: str) -> None:
    """Write the token cache a first llmlab run would write, with llmlab's own data functions.

    Used where a scale gets no cold run, so its one llmlab run really is warm.
    """
    import os

    os.environ["LLMLAB_CACHE_DIR"] = cache_dir
    from core.corpus import load_corpus
    from core.lm.tokenizers import load_tokenizer
    from core.pretrain import data as pdata

    tok, _ = load_tokenizer(tokenizer_dir)
    path = pdata.token_cache_path(pdata.cache_key(data, rows, eval_rows, tok))
    if pdata.load_cached(path) is not None:
        return
    corpus = load_corpus(data, rows, eval_rows)
    pdata.save_cached(path, pdata.TokenizedCorpus(
        train_ids=pdata.tokenize_rows(corpus.train, tok), eval_ids=pdata.tokenize_rows(corpus.held_out, tok),
        n_train_rows=len(corpus.train), n_eval_rows=len(corpus.held_out), source=corpus.source,
        held_out_note=corpus.held_out_note))


def run_llmlab(job: dict) -> dict:
    """core.pretrain.run.run_pretrain, exactly as `llmlab pretrain` calls it, timed from outside."""
    import os

    os.environ["LLMLAB_CACHE_DIR"] = job["cache_dir"]  # cold = fresh folder, warm = the same one again
    from core.corpus import load_corpus
    from core.pretrain.config import PretrainConfig
    from core.pretrain.model import build_model as build_gpt2
    from core.pretrain.run import run_pretrain

    overrides = dict(job.get("overrides") or {})
    attn = overrides.pop("attn", None)
    build_model = None
    if attn:  # lever: another attention kernel; llmlab's config has no option for it, so hand run_pretrain a builder

        def build_model(cfg, vocab_size, eos_token_id=None):
            model = build_gpt2(cfg, vocab_size, eos_token_id)
            model.set_attn_implementation(attn)
            return model
    cfg = PretrainConfig(data=job["data"], rows=job["rows"], eval_rows=job["eval_rows"], epochs=job["epochs"],
                         tokenizer=job["tokenizer_dir"], model_size=job["model_size"], seed=job["seed"],
                         out=str(Path(job["out"]) / "run"), **overrides)
    # The transformers classes llmlab builds on, imported before the clock starts as the baseline imports Trainer's
    # (about 4 s on a 2-core CPU, which llmlab's lazy imports had put inside its total). Nothing else is pre-imported:
    # what else llmlab imports on the way (matplotlib for the chart) stays in its total; process_seconds has it all.
    from transformers import AutoTokenizer, GPT2LMHeadModel  # noqa: F401

    t0 = time.perf_counter()
    summary = run_pretrain(cfg, log=lambda line: print(line, flush=True), build_model=build_model)
    cuda_sync()
    total = time.perf_counter() - t0
    process_seconds = time.time() - process_start()
    peak = peak_memory_mib()
    tokens = summary["tokens_per_epoch"] * summary["epochs_completed"]
    held = load_corpus(job["data"], job["rows"], job["eval_rows"]).held_out
    result = {
        "engine": "llmlab", "status": summary["status"], "total_seconds": round(total, 3),
        "process_seconds": round(process_seconds, 3), "train_seconds": summary["train_seconds"],
        "tokens_trained": tokens, "steps": summary["steps"], "total_steps": summary["steps"],
        "n_params": summary["n_params"], "peak_memory_mib": peak, "peak_rss_mib": peak_rss_mib(),
        "final_loss": summary["final_loss"],
        "own_eval_loss": summary["eval_loss"], "token_cache_hit": summary["token_cache_hit"],
        "phases": summary["phases"], "optimizations": summary["optimizations"],
        "batch_size": summary["batch_size"], "block_size": summary["block_size"],
        "config": {k: v for k, v in cfg.to_dict().items() if k not in ("out", "extra")},
        "lever_attn": attn, "device_used": summary["device"],
        **_figures(summary["train_seconds"], tokens, summary["n_params"]),
    }
    result["heldout_loss"] = heldout_loss(summary["model_dir"], job["tokenizer_dir"], held)
    return result


# ---------------------------------------------------------------------------------------------
# Baseline: the usual Trainer recipe


def _stop_callback(fraction: float | None, max_loop_seconds: float | None):
    """Times the training loop and, for a subset run, ends it early (schedule untouched)."""
    from transformers import TrainerCallback

    class LoopTimer(TrainerCallback):
        def __init__(self):
            self.t_begin = None
            self.loop_seconds = 0.0
            self.steps = 0
            self.stopped_early = False

        def on_train_begin(self, args, state, control, **kwargs):
            cuda_sync()
            self.t_begin = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.steps = state.global_step
            over_steps = fraction is not None and fraction < 1 and state.global_step >= max(1, round(fraction * state.max_steps))
            over_time = max_loop_seconds is not None and time.perf_counter() - self.t_begin >= max_loop_seconds
            if (over_steps or over_time) and state.global_step < state.max_steps:
                control.should_training_stop = True
                self.stopped_early = True

        def on_train_end(self, args, state, control, **kwargs):
            cuda_sync()
            self.loop_seconds = time.perf_counter() - self.t_begin

    return LoopTimer()


def run_baseline(job: dict) -> dict:
    """Rows tokenized one by one, padded per batch, default TrainingArguments, batch 8, 3 epochs."""
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        GPT2Config,
        Trainer,
        TrainingArguments,
    )

    from core.corpus import load_corpus
    from core.pretrain.config import MODEL_PRESETS

    out = Path(job["out"])
    t0 = time.perf_counter()
    corpus = load_corpus(job["data"], job["rows"], job["eval_rows"])  # the same rows llmlab reads
    tok = AutoTokenizer.from_pretrained(job["tokenizer_dir"])
    tok.pad_token = tok.eos_token  # GPT-2 has no pad token; this is what every tutorial does
    train_rows = [tok(text) for text in corpus.train]  # one row at a time, as a map() would
    t_tokenized = time.perf_counter()
    torch.manual_seed(job["seed"])
    model = AutoModelForCausalLM.from_config(GPT2Config(**MODEL_PRESETS[job["model_size"]]))
    n_params = sum(p.numel() for p in model.parameters())
    args = TrainingArguments(output_dir=str(out / "trainer"), per_device_train_batch_size=job["batch_size"],
                             num_train_epochs=job["epochs"])
    timer = _stop_callback(job.get("fraction"), job.get("max_loop_seconds"))
    trainer = Trainer(model=model, args=args, train_dataset=train_rows, processing_class=tok,
                      data_collator=DataCollatorForLanguageModeling(tok, mlm=False), callbacks=[timer])
    t_train = time.perf_counter()
    output = trainer.train()
    cuda_sync()
    train_seconds = time.perf_counter() - t_train
    peak = peak_memory_mib()
    model_dir = out / "model"
    t_save = time.perf_counter()
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    t_end = time.perf_counter()
    total_steps = trainer.state.max_steps
    steps = trainer.state.global_step
    # A subset run is scaled by the loop's own time per step; set-up and saving are not scaled.
    extra = timer.loop_seconds * (total_steps / steps - 1) if timer.stopped_early and steps else 0.0
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    real_tokens = sum(len(r["input_ids"]) for r in train_rows) * job["epochs"]
    train_scaled = train_seconds + extra
    result = {
        "engine": "baseline", "status": "completed",
        "total_seconds": round(t_end - t0 + extra, 3), "process_seconds": round(time.time() - process_start() + extra, 3),
        "train_seconds": round(train_scaled, 3), "measured_train_seconds": round(train_seconds, 3),
        "loop_seconds": round(timer.loop_seconds, 3), "steps": steps, "total_steps": total_steps,
        "scaled_from_fraction": round(steps / total_steps, 4) if timer.stopped_early else None,
        "tokens_trained": real_tokens, "n_params": n_params, "peak_memory_mib": peak, "peak_rss_mib": peak_rss_mib(),
        # Trainer logs the mean loss of the last `logging_steps` (500) steps; a subset run's
        # model is only partly trained, so its losses say nothing about the full recipe.
        "final_loss": None if timer.stopped_early else (losses[-1] if losses else round(output.training_loss, 5)),
        "final_loss_is": "last logged (mean of the last 500 steps)" if losses else "mean over the whole run (< 500 steps)",
        "mean_train_loss": None if timer.stopped_early else round(output.training_loss, 5),
        "own_eval_loss": None,
        "phases": {"read_and_tokenize": round(t_tokenized - t0, 3), "model_and_trainer": round(t_train - t_tokenized, 3),
                   "train": round(train_seconds, 3), "save": round(t_end - t_save, 3)},
        "batch_size": job["batch_size"], "training_args": {"per_device_train_batch_size": job["batch_size"],
                                                           "num_train_epochs": job["epochs"], "rest": "defaults"},
        "dtype": str(next(model.parameters()).dtype).replace("torch.", ""), "device_used": str(args.device),
        **_figures(train_scaled, real_tokens, n_params),
    }
    del trainer
    result["heldout_loss"] = None if timer.stopped_early else heldout_loss(str(model_dir), job["tokenizer_dir"],
                                                                         corpus.held_out)
    return result


def main(argv: list[str]) -> None:
    job = read_job(argv)
    try:
        result = run_llmlab(job) if job["engine"] == "llmlab" else run_baseline(job)
    finally:
        if not job.get("keep_models"):  # a 124M model plus Trainer checkpoints is GBs per run
            shutil.rmtree(job["out"], ignore_errors=True)
    result["rows"], result["epochs"], result["model_size"] = job["rows"], job["epochs"], job["model_size"]
    write_result(job, result)


if __name__ == "__main__":
    main(sys.argv)
