"""One MMMLU eval run: resolve inputs, write the run directory, call the engine, summarise.

`run_eval(EvalConfig(...))` is the API the CLI, the app and the benchmarks share. Inputs are
checked before the run directory is made, so a typo leaves nothing behind.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from core.errors import OutOfMemory, UsageError
from core.mmmlu import extract_answer, load_csv, select_questions
from core.runs import EventLog, JsonlWriter, create_run_dir, write_json

MODES = ("generate", "logprob")
DTYPES = ("auto", "bf16", "fp16", "fp32")
BACKENDS = ("generate", "continuous")


@dataclass
class EvalConfig:
    model: str = "Qwen/Qwen2.5-0.5B"  # Hub id or local folder
    data: str = "openai/MMMLU"  # Hub dataset id, local CSV, or a folder holding test/mmlu_<locale>.csv
    locale: str = "ZH_CN"
    subject: str = "moral_scenarios"  # or "all"
    limit: int | None = 100  # None: every selected question
    max_new_tokens: int = 512
    batch_size: int | str = "auto"
    dtype: str = "auto"
    mode: str = "generate"
    out: str | None = None  # run folder; default runs/<timestamp>-eval
    demo: bool = False  # tiny random Qwen2 + assets/mmmlu_demo_zh.csv, fully offline
    stop_at_answer: bool = False
    static_cache: bool = False
    compile: bool = False
    cuda_graphs: bool = False
    backend: str = "generate"  # or "continuous" (transformers generate_batch)
    free_finished: bool = True
    threads: int | None = None  # torch CPU threads; None: torch's default (the demo uses 1)


def _check(config: EvalConfig) -> None:
    if config.mode not in MODES:
        raise UsageError(f"--mode {config.mode} is not one of {', '.join(MODES)}")
    if config.dtype not in DTYPES:
        raise UsageError(f"--dtype {config.dtype} is not one of {', '.join(DTYPES)}")
    if config.backend not in BACKENDS:
        raise UsageError(f"--backend {config.backend} is not one of {', '.join(BACKENDS)}")
    if config.max_new_tokens < 1:
        raise UsageError(f"--max-new-tokens must be at least 1 (got {config.max_new_tokens})")
    if config.batch_size != "auto" and (not isinstance(config.batch_size, int) or config.batch_size < 1):
        raise UsageError(f"--batch-size must be a positive number or auto (got {config.batch_size})")
    if config.threads is not None and config.threads < 1:
        raise UsageError(f"--threads must be at least 1 (got {config.threads})")


class _Interrupts:
    """First Ctrl-C: finish the current batch, then stop. Second Ctrl-C: stop at once."""

    def __init__(self, emit):
        self.requested = False
        self._emit = emit
        self._previous = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self._emit("log", message="interrupted: finishing the current batch, then stopping (Ctrl-C again to stop now)")

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _optimizations(config: EvalConfig, batch_size: int, dtype: str, device: str, attn: str | None) -> list[str]:
    """Only what is active in this run, in words a report reader understands."""
    active = []
    if dtype in ("bf16", "fp16"):
        active.append(f"{dtype} weights and activations")
    if attn == "sdpa":
        active.append("SDPA attention kernels")
    if config.mode == "logprob":
        active.append("log-prob scoring: one forward pass per batch, no generation")
    if batch_size > 1:
        active.append(f"batched inference (batch size {batch_size}, left padding)")
        active.append("prompts sorted by token length to cut padding")
    if config.mode == "generate":
        if config.backend == "continuous":
            active.append("continuous batching (transformers generate_batch): finished rows free their slots")
            if config.cuda_graphs and device == "cuda":
                active.append("CUDA graphs (continuous batching)")
        else:
            if config.free_finished and not config.static_cache and batch_size > 1:
                active.append("finished rows dropped from the batch and its KV cache")
            if config.static_cache:
                active.append("static KV cache")
            if config.compile and device == "cuda":
                active.append("torch.compile of the decode step" + (" with CUDA graphs (reduce-overhead)" if config.cuda_graphs else ""))
            if config.stop_at_answer:
                active.append("stop each row once its answer letter is out (--stop-at-answer)")
    return active


def _flag_warnings(config: EvalConfig, device: str) -> list[str]:
    notes = []
    if config.mode == "logprob" and (config.stop_at_answer or config.static_cache or config.compile or config.cuda_graphs or config.backend != "generate"):
        notes.append("generation options (--stop-at-answer, --static-cache, --compile, --cuda-graphs, --backend) do nothing in logprob mode")
    if config.mode == "generate" and config.backend == "continuous" and (config.stop_at_answer or config.static_cache or config.compile):
        notes.append("--stop-at-answer, --static-cache and --compile apply to --backend generate only; ignored")
    if device != "cuda" and (config.compile or config.cuda_graphs):
        notes.append("--compile and --cuda-graphs only apply on a CUDA GPU; ignored on CPU")
    return notes


def run_eval(config: EvalConfig, progress: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None) -> dict:
    """Run one eval and return its summary (also written to summary.json).

    `progress` receives every event as it is written to events.jsonl (start, progress, log,
    end). `should_stop` is polled between batches, like the first Ctrl-C. Raises UsageError for
    bad input; any other failure is recorded as status "failed" and re-raised.
    """
    t0 = time.time()
    _check(config)
    from core.evaluate import demo as demo_mod
    from core.evaluate.loading import resolve_data, resolve_model

    # Inputs first: nothing is written until they are known to be usable.
    data_path = demo_mod.DEMO_DATA if config.demo else resolve_data(config.data, config.locale)
    questions, notes = select_questions(load_csv(data_path), config.subject, config.limit)
    model_path = demo_mod.ensure_demo_model() if config.demo else resolve_model(config.model)
    model_label = demo_mod.DEMO_LABEL if config.demo else config.model
    data_label = _data_label(config, data_path)
    threads = config.threads if config.threads is not None else (1 if config.demo else None)

    run_dir = create_run_dir("eval", config.out)
    events = EventLog(run_dir / "events.jsonl", t0=t0)
    results = JsonlWriter(run_dir / "results.jsonl")

    def emit(type_: str, **fields) -> None:
        events.emit(type_, **fields)
        if progress is not None:
            progress({"type": type_, **fields})

    resolved = {**asdict(config), "kind": "eval"}
    if config.demo:  # record what the demo really used, not the unused defaults
        resolved.update(model=str(model_path), data=str(data_path))
    resolved.update(
        model_path=str(model_path), data_path=str(data_path), data_label=data_label, model_label=model_label,
        threads=threads, questions=len(questions), run_dir=str(run_dir),
    )
    write_json(run_dir / "config.json", resolved)
    emit("start", kind="eval", pid=os.getpid(), total=len(questions), run_dir=str(run_dir), demo=config.demo)
    if config.demo:
        emit("log", message=f"demo: {model_label}, data {data_path.name}")
    for note in notes:
        emit("log", message=note)

    rows: list[dict] = []
    state = {"status": "failed", "error": None, "load_seconds": None, "generate_seconds": None,
             "batch_size": config.batch_size, "dtype": config.dtype, "optimizations": [], "prompt_tokens": 0}
    import torch

    previous_threads = torch.get_num_threads()
    try:
        with _Interrupts(emit) as interrupts:
            _execute(config, questions, model_path, threads, state, rows, results, emit, resolved, run_dir,
                     lambda: interrupts.requested or (should_stop is not None and should_stop()))
            state["status"] = "stopped" if len(rows) < len(questions) else "completed"
    except KeyboardInterrupt:
        state["status"] = "stopped"
        raise
    except OutOfMemory as exc:
        state["error"] = f"{exc}; try --dtype bf16, a smaller --max-new-tokens or --mode logprob"
        raise UsageError(state["error"]) from None
    except BaseException as exc:
        state["error"] = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise
    finally:
        torch.set_num_threads(previous_threads)
        results.close()
        summary = _finish(config, state, rows, questions, resolved, t0)
        emit("end", status=summary["status"], accuracy=summary["accuracy"], n=summary["n"], error=summary.get("error"))
        events.close()
    return summary


def _data_label(config: EvalConfig, data_path: Path) -> str:
    """What the data is, for people: the Hub name and file, or the local path."""
    if config.demo:
        return f"{data_path.name} (demo questions)"
    if not Path(config.data).expanduser().exists():
        from core.evaluate.loading import mmmlu_filename

        return f"{config.data} {mmmlu_filename(config.locale)}"
    return str(data_path)


def _execute(config, questions, model_path, threads, state, rows, results, emit, resolved, run_dir, stop_requested):
    import torch

    from core.evaluate.engine import auto_batch_size, generate_answers, prompt_lengths, score_choices
    from core.evaluate.loading import load_model, pick_device, resolve_dtype

    if threads:
        torch.set_num_threads(threads)
    device = pick_device()
    dtype, dtype_name = resolve_dtype(config.dtype, device)
    start = time.time()
    model, tokenizer = load_model(model_path, dtype, device)
    state["load_seconds"] = time.time() - start
    if model.generation_config.do_sample:
        emit("log", message="the model's generation_config samples (do_sample=True), so answers vary from run to run; it is kept as the model ships it")
    prompts = [q.prompt for q in questions]
    lengths = prompt_lengths(tokenizer, prompts)
    state["prompt_tokens"] = sum(lengths)
    batch_size = config.batch_size
    if batch_size == "auto":
        batch_size = auto_batch_size(model, lengths, config.max_new_tokens, config.mode)
    batch_size = min(batch_size, len(prompts))
    attn = getattr(model.config, "_attn_implementation", None)
    state.update(batch_size=batch_size, dtype=dtype_name, device=device,
                 optimizations=_optimizations(config, batch_size, dtype_name, device, attn))
    write_json(run_dir / "config.json", {**resolved, "batch_size": batch_size, "dtype": dtype_name, "device": device})
    for note in _flag_warnings(config, device):
        emit("log", message=note)

    total, gen_start = len(questions), time.time()

    def on_batch(batch):
        for i, result in zip(batch.indices, batch.results):
            q = questions[i]
            if config.mode == "generate":
                pred, output, new_tokens, extra = extract_answer(result.text), result.text, result.new_tokens, {}
            else:
                pred = max(result, key=result.get)
                output, new_tokens, extra = "", 0, {"logprobs": {k: round(v, 4) for k, v in result.items()}}
            row = {"index": q.index, "subject": q.subject, "question": q.question, "prompt": q.prompt, "gold": q.gold,
                   "pred": pred, "correct": pred == q.gold, "output": output, "new_tokens": new_tokens, **extra}
            results.write(row)
            rows.append(row)
        emit("progress", done=len(rows), total=total, batch_size=batch.batch_size,
             tokens_per_s=round(batch.tokens / batch.seconds, 1) if batch.seconds > 0 else None,
             correct=sum(r["correct"] for r in rows))

    def log(message):
        emit("log", message=message)

    try:
        if config.mode == "generate":
            _, state["batch_size"] = generate_answers(
                model, tokenizer, prompts, max_new_tokens=config.max_new_tokens, batch_size=batch_size,
                stop_at_answer=config.stop_at_answer, static_cache=config.static_cache, compile=config.compile and device == "cuda",
                cuda_graphs=config.cuda_graphs and device == "cuda", free_finished=config.free_finished, backend=config.backend,
                on_batch=on_batch, should_stop=stop_requested, log=log,
            )
        else:
            _, state["batch_size"] = score_choices(model, tokenizer, prompts, batch_size=batch_size, on_batch=on_batch, should_stop=stop_requested, log=log)
    finally:
        state["generate_seconds"] = time.time() - gen_start


def _finish(config, state, rows, questions, resolved, t0) -> dict:
    from core.evaluate.report import answer_counts, render_report
    from core.hardware import markdown_table, snapshot

    correct = sum(r["correct"] for r in rows)
    tokens = sum(r["new_tokens"] for r in rows)
    gen_s = state["generate_seconds"]
    summary = {
        "kind": "eval",
        "status": state["status"],
        "accuracy": correct / len(rows) if rows else None,
        "correct": correct,
        "n": len(rows),
        "total": len(questions),
        "total_seconds": round(time.time() - t0, 3),
        "load_seconds": None if state["load_seconds"] is None else round(state["load_seconds"], 3),
        "generate_seconds": None if gen_s is None else round(gen_s, 3),
        "tokens_generated": tokens,
        "tokens_per_second": round(tokens / gen_s, 1) if config.mode == "generate" and gen_s else None,
        "prompt_tokens": state["prompt_tokens"],
        "answer_counts": answer_counts(r["pred"] for r in rows),
        "mode": config.mode,
        "batch_size": state["batch_size"],
        "dtype": state["dtype"],
        "device": state.get("device"),
        "model": resolved["model_path"] if config.demo else config.model,
        "model_label": resolved["model_label"],
        "data": resolved["data_label"],
        "data_path": resolved["data_path"],
        "subject": config.subject,
        "limit": config.limit,
        "max_new_tokens": config.max_new_tokens,
        "demo": config.demo,
        "hardware": snapshot(),
        "optimizations": state["optimizations"],
        "run_dir": resolved["run_dir"],
    }
    if config.demo:
        summary["note"] = "demo run: random-weight model, accuracy is meaningless"
    if state["error"]:
        summary["error"] = state["error"]
    run_dir = Path(resolved["run_dir"])
    write_json(run_dir / "summary.json", summary)
    report = render_report(summary, rows, markdown_table(summary["hardware"]))
    (run_dir / "report.md").write_text(report, encoding="utf-8")
    return summary
