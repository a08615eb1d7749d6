"""One pretraining run from options to a finished run directory.

Phases (each timed and logged): data (read rows), tokenize (or load cached ids), model_init,
train, save, report. `total_seconds` runs from the process start to the report being written.
"""

from __future__ import annotations

import os
import time
import traceback
from pathlib import Path
from typing import Callable

from core.errors import OutOfMemory, UsageError
from core.hardware import peak_bf16_flops, snapshot
from core.pretrain.config import PretrainConfig
from core.runs import EventLog, create_run_dir, write_json
from core.signals import StopRequest


def process_start_time() -> float:
    """When this process started (so total time includes Python and library imports)."""
    try:
        import psutil

        return psutil.Process().create_time()
    except Exception:
        return time.time()


def _load_tokens(cfg: PretrainConfig, tok, notes: list[str], phases: dict):
    from core.pretrain import data

    key = data.cache_key(cfg.data, cfg.rows, cfg.eval_rows, tok)
    path = data.token_cache_path(key)
    t = time.time()
    cached = data.load_cached(path) if cfg.token_cache else None
    if cached is not None:
        phases["data"] = 0.0
        phases["tokenize"] = time.time() - t
        notes.append(f"token cache hit: {path}")
        return cached, "hit"
    corpus = data.load_corpus(cfg.data, cfg.rows, cfg.eval_rows)
    phases["data"] = time.time() - t
    t = time.time()
    tokens = data.TokenizedCorpus(
        train_ids=data.tokenize_rows(corpus.train, tok), eval_ids=data.tokenize_rows(corpus.held_out, tok),
        n_train_rows=len(corpus.train), n_eval_rows=len(corpus.held_out),
        source=corpus.source, held_out_note=corpus.held_out_note)
    state = "off"
    if cfg.token_cache:
        try:
            data.save_cached(path, tokens)
            state = "written"
        except OSError as exc:
            notes.append(f"could not write the token cache ({exc.strerror}); continuing without it")
            state = "failed"
    phases["tokenize"] = time.time() - t
    return tokens, state


# What each token-cache outcome adds to `optimizations`: only a cache that was read or written counts.
CACHE_OPTIMIZATION = {"hit": "token ids read from the on-disk cache (no tokenizing)",
                      "written": "token ids cached on disk for the next run"}


def resume_config(run_dir: str | Path) -> tuple[PretrainConfig, Path]:
    """The config of a pretraining run to resume and its newest complete checkpoint."""
    from core.pretrain.checkpoint import checkpoint_problem, list_checkpoints
    from core.runs import load_run_config

    path, config = load_run_config(run_dir, "pretrain")
    checkpoints = list_checkpoints(path)
    if not checkpoints:
        raise UsageError(f"{path} has no complete checkpoint to resume from; start a new run")
    problem = checkpoint_problem(checkpoints[-1])
    if problem:
        older = (f"delete {checkpoints[-1]} to resume from {checkpoints[-2].name}" if len(checkpoints) > 1
                 else "there is no older checkpoint; start a new run")
        raise UsageError(f"checkpoint {checkpoints[-1].name} of {path} is damaged ({problem}); {older}")
    config.pop("kind", None)
    known = PretrainConfig.__dataclass_fields__
    cfg = PretrainConfig(**{k: v for k, v in config.items() if k in known})
    cfg.out = str(path)
    return cfg, checkpoints[-1]


def run_pretrain(cfg: PretrainConfig, on_step: Callable[[int, int], None] | None = None,
                 log: Callable[[str], None] = print, resume_from: Path | None = None,
                 stop: "StopRequest | None" = None, build_model: Callable | None = None) -> dict:
    """Run, write every file of the run directory, and return the summary.

    Tokenizer and data are loaded before the run directory exists, so bad input (a missing
    file, no 'text' column, no network) ends with one error line and leaves nothing behind.
    With `resume_from` (a checkpoint of the run in cfg.out) the run continues in its own
    directory and appends to its events.jsonl. `build_model(cfg, vocab_size, eos_token_id)`
    replaces llmlab's GPT-2 builder (the benches use it to try other attention kernels).
    """
    from transformers.utils import logging as hf_logging

    from core.tokenizer import load_tokenizer

    t0 = process_start_time()
    cfg.validate()
    hf_logging.disable_progress_bar()  # our own bar is the one progress display
    phases: dict[str, float] = {}
    notes: list[str] = []
    t = time.time()
    tok, tok_source = load_tokenizer(cfg.tokenizer)
    if len(tok) <= 1 or tok.eos_token_id is None:
        # transformers builds an empty tokenizer from a folder that holds only a config.json.
        raise UsageError(f"--tokenizer {cfg.tokenizer} has no vocabulary or no end-of-text token "
                         f"(no tokenizer.json, or vocab.json and merges.txt?); pass a tokenizer folder or --tokenizer gpt2")
    phases["tokenizer_load"] = time.time() - t
    tokens, cache_state = _load_tokens(cfg, tok, notes, phases)
    cache_hit = cache_state == "hit"

    if resume_from is None:
        run_dir = create_run_dir("pretrain", cfg.out)
        cfg.out = str(run_dir)
        write_json(run_dir / "config.json", cfg.to_dict())
    else:
        run_dir = Path(cfg.out)
    events = EventLog(run_dir / "events.jsonl", t0=t0)
    emit = events.emit
    stop = stop or StopRequest()
    stop.install()
    summary: dict = {"kind": "pretrain", "status": "failed", "run_dir": str(run_dir), "demo": cfg.demo,
                     "tokenizer": tok_source}
    emit("start", kind="pretrain", pid=os.getpid(), run_dir=str(run_dir), epochs=cfg.epochs)
    for name in ("data", "tokenize"):
        emit("phase", name=name, seconds=round(phases[name], 3), **({"cache_hit": cache_hit} if name == "tokenize" else {}))
    for note in notes:
        emit("log", message=note)
    log(f"run directory: {run_dir}")
    log(f"data: {tokens.source}; {tokens.n_train_rows} training rows, {len(tokens.train_ids):,} tokens"
        + (" (token cache hit)" if cache_hit else ""))
    try:
        summary.update(_run_phases(cfg, run_dir, tok, tokens, cache_state, emit, stop, phases, on_step, log, resume_from,
                                   build_model))
        summary["status"] = "failed" if summary.get("error") else "stopped" if stop() else "completed"
    except KeyboardInterrupt:
        summary.update(status="stopped", error="interrupted twice; stopped without saving the model")
    except OutOfMemory as exc:  # already halved down to one sequence: the user has to change something
        summary["error"] = str(exc)
        raise UsageError(str(exc)) from None
    except Exception as exc:
        summary["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        (run_dir / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
        raise
    finally:
        stop.restore()
        summary["phases"] = {k: round(v, 3) for k, v in phases.items()}
        summary["stop_signal"] = stop.signal
        _finish(run_dir, summary, t0, emit, log)
        events.close()
    return summary


def _run_phases(cfg, run_dir: Path, tok, tokens, cache_state: str, emit, stop, phases, on_step, log, resume_from,
                build_model=None) -> dict:
    from core.pretrain.data import pack_blocks
    from core.pretrain.model import build_model as build_gpt2
    from core.pretrain.train import count_steps_per_epoch, train

    build_model = build_model or build_gpt2
    t = time.time()
    pad_id = tok.eos_token_id
    train_blocks = pack_blocks(tokens.train_ids, cfg.block_size, pad_id)
    eval_blocks = pack_blocks(tokens.eval_ids, cfg.block_size, pad_id)
    model = build_model(cfg, vocab_size=len(tok), eos_token_id=tok.eos_token_id)
    n_params = sum(p.numel() for p in model.parameters())
    phases["model_init"] = time.time() - t
    emit("phase", name="model_init", seconds=round(phases["model_init"], 3))
    steps_per_epoch = count_steps_per_epoch(train_blocks[0].shape[0], cfg.batch_size)
    emit("plan", total_steps=steps_per_epoch * cfg.epochs, steps_per_epoch=steps_per_epoch,
         blocks=train_blocks[0].shape[0], tokens_per_epoch=len(tokens.train_ids), n_params=n_params)
    log(f"model: GPT-2 {cfg.model_size}, {n_params / 1e6:.1f} M parameters; "
        f"{steps_per_epoch * cfg.epochs} steps of {cfg.batch_size}×{cfg.block_size} tokens")

    result = train(model, train_blocks, eval_blocks, cfg, emit, should_stop=stop, on_step=on_step,
                   run_dir=run_dir, resume_from=resume_from)
    if result.compile_seconds is not None:
        phases["compile"] = result.compile_seconds
    phases["train"] = result.train_seconds
    emit("phase", name="train", seconds=round(result.train_seconds, 3))
    optimizations = result.optimizations[:1] + ([CACHE_OPTIMIZATION[cache_state]] if cache_state in CACHE_OPTIMIZATION else []) \
        + result.optimizations[1:]

    t = time.time()
    model.save_pretrained(run_dir / "model")  # safetensors
    tok.save_pretrained(run_dir / "model")
    phases["save"] = time.time() - t
    emit("phase", name="save", seconds=round(phases["save"], 3))

    hw = snapshot()
    # Only the tokens this process trained on: after a resume, train_seconds covers just this process too.
    tps = result.tokens_trained / result.train_seconds if result.train_seconds > 0 else None
    peak = peak_bf16_flops(hw["gpus"][0]["name"]) if hw["gpus"] and result.device.startswith("cuda") else None
    # 6·N FLOPs per token for forward+backward through the weights, plus the attention scores.
    flops_per_token = 6 * n_params + 12 * model.config.n_layer * model.config.n_embd * cfg.block_size
    return {
        "train_seconds": round(result.train_seconds, 3), "epochs": cfg.epochs, "epochs_completed": result.epochs_done,
        "rows": tokens.n_train_rows, "eval_rows": tokens.n_eval_rows, "held_out": tokens.held_out_note,
        "tokens_per_epoch": int(len(tokens.train_ids)), "steps": result.steps, "tokens_trained": result.tokens_trained,
        "final_loss": result.final_loss, "eval_loss": result.eval_losses[-1] if result.eval_losses else None,
        "eval_losses": result.eval_losses, "n_params": n_params,
        "data_source": tokens.source, "token_cache_hit": cache_state == "hit", "token_cache": cache_state, "model_size": cfg.model_size,
        "batch_size": cfg.batch_size, "block_size": cfg.block_size, "device": result.device,
        "tokens_per_second": round(tps, 1) if tps else None,
        "mfu": round(flops_per_token * tps / peak, 4) if (peak and tps) else None,
        "peak_memory_mib": result.peak_memory_mib, "hardware": hw, "optimizations": optimizations,
        "compile_seconds": None if result.compile_seconds is None else round(result.compile_seconds, 3),
        "model_dir": str(run_dir / "model"), "nonfinite_steps": result.nonfinite_steps,
        "micro_batch_size": result.micro_batch_size, "oom_retries": result.oom_retries,
        "checkpoint": result.checkpoint, "resumed_from": str(resume_from) if resume_from else None,
        **({"error": result.error} if result.error else {}),
    }


def _finish(run_dir: Path, summary: dict, t0: float, emit, log) -> None:
    """Chart, report and summary, whatever the status; the report's total time is measured last."""
    from core.pretrain.report import plot_loss, write_report

    if "hardware" not in summary:  # a run that failed before training has not taken it yet
        summary["hardware"] = snapshot()
    t = time.time()
    try:
        plot_loss(run_dir / "events.jsonl", run_dir / "loss.png", f"GPT-2 pretraining — {run_dir.name}")
    except Exception as exc:  # a chart must never hide the run's real outcome
        emit("log", message=f"could not draw loss.png: {exc}")
    summary["phases"]["report"] = round(time.time() - t, 3)
    summary["total_seconds"] = round(time.time() - t0, 3)
    write_report(run_dir, summary)
    write_json(run_dir / "summary.json", summary)
    emit("end", status=summary["status"], error=summary.get("error"), total_seconds=summary["total_seconds"])
    log(f"{summary['status']} in {summary['total_seconds']:.1f} s; report: {run_dir / 'report.md'}")
