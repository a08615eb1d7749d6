"""One fine-tuning run per process, started by bench/finetune.py: llmlab's run_finetune or a plain peft + Trainer script.

Both train the same LoRA (rank, alpha, dropout, targets) on the same examples (llmlab's own split
and template, read from the files a llmlab run wrote), for the same epochs and batch size, and
both adapters are scored by the same code: the mean loss over the val examples' target tokens.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bench.common import cuda_sync, peak_memory_mib, process_start, read_job, write_result


def _val_loss(model, tokenizer, rows: list[dict]) -> float:
    from core.finetune.train import encode, mean_loss

    examples, _ = encode(tokenizer, rows, 512)
    import contextlib

    return round(mean_loss(model, examples, 8, tokenizer.pad_token_id, contextlib.nullcontext), 5)


def run_llmlab(job: dict) -> dict:
    from core.finetune.config import FinetuneConfig
    from core.finetune.run import run_finetune

    cfg = FinetuneConfig(out=str(Path(job["out"]) / "run"), **job["config"])
    t0 = time.perf_counter()
    summary = run_finetune(cfg, log=lambda line: print(line, flush=True))
    cuda_sync()
    return {"engine": "llmlab", "status": summary["status"], "total_seconds": round(time.perf_counter() - t0, 3),
            "process_seconds": round(time.time() - process_start(), 3), "train_seconds": summary.get("train_seconds"),
            "steps": summary.get("steps"), "best_val_loss": summary.get("best_val_loss"),
            "final_val_loss": (summary.get("val_losses") or [{}])[-1].get("val_loss"),
            "test_accuracy_before": summary.get("test_accuracy_before"),
            "test_accuracy_after": summary.get("test_accuracy_after"),
            "trainable_params": summary.get("trainable_params"), "peak_memory_mib": peak_memory_mib(),
            "optimizations": summary.get("optimizations"), "run_dir": str(cfg.out)}


def run_baseline(job: dict) -> dict:
    """The usual way: tokenize prompt + target, mask the prompt with -100, peft LoRA, transformers.Trainer."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from core.runs import iter_jsonl

    data_dir = Path(job["data_dir"])
    train_rows = list(iter_jsonl(data_dir / "train.jsonl"))
    val_rows = list(iter_jsonl(data_dir / "val.jsonl"))
    cfg = job["config"]
    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(job["model_dir"])
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    cuda = torch.cuda.is_available()
    model = AutoModelForCausalLM.from_pretrained(job["model_dir"], dtype=torch.bfloat16 if cuda else torch.float32)

    def tokenize(row):
        prompt = tok(row["prompt"])["input_ids"]
        target = tok(row["target"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        return {"input_ids": prompt + target, "attention_mask": [1] * (len(prompt) + len(target)),
                "labels": [-100] * len(prompt) + target}

    train = [tokenize(r) for r in train_rows]
    model = get_peft_model(model, LoraConfig(r=cfg["rank"], lora_alpha=cfg["alpha"], lora_dropout=cfg["dropout"],
                                             target_modules=job["target_modules"], task_type="CAUSAL_LM"))
    args = TrainingArguments(output_dir=str(Path(job["out"]) / "trainer"), per_device_train_batch_size=cfg["batch_size"],
                             num_train_epochs=cfg["epochs"], learning_rate=cfg["lr"], lr_scheduler_type="cosine",
                             warmup_steps=0.03,  # a float below 1 is a share of the steps in transformers 5
                             bf16=cuda, logging_steps=5, save_strategy="no", report_to=[],
                             seed=cfg["seed"], use_cpu=not cuda, dataloader_pin_memory=False)
    trainer = Trainer(model=model, args=args, train_dataset=train,
                      data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100))
    t_train = time.perf_counter()
    trainer.train()
    cuda_sync()
    train_seconds = time.perf_counter() - t_train
    model.eval()
    return {"engine": "baseline", "status": "completed", "total_seconds": round(time.perf_counter() - t0, 3),
            "process_seconds": round(time.time() - process_start(), 3), "train_seconds": round(train_seconds, 3),
            "steps": trainer.state.global_step, "final_val_loss": _val_loss(model, tok, val_rows),
            "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "peak_memory_mib": peak_memory_mib()}


def main(argv: list[str]) -> None:
    job = read_job(argv)
    result = {"llmlab": run_llmlab, "baseline": run_baseline}[job["engine"]](job)
    write_result(job, result)


if __name__ == "__main__":
    main(sys.argv)
