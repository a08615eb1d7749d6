"""One MMMLU eval run: resolve inputs, write the run directory, call the engine, summarise.

`run_eval(EvalConfig(...))` is the API the CLI, the app and the benchmarks share. Inputs are
checked before the run directory is made, so a typo leaves nothing behind.

Resuming: every results.jsonl row carries a `key` (a hash of the run's settings, the question's
index and its prompt) and config.json the settings it was made under (`settings`,
`settings_hash`: model, sha256 of the data file, dtype, generation options, prompt template).
`run_eval(resume_config(run_dir), resume=True)` keeps the rows whose key still matches, runs
only the questions without one, and refuses in one line when the settings or data changed.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from core.errors import OutOfMemory, UsageError
from core.evaluate.config import BACKENDS, DTYPES, MODES, EvalConfig, check_config  # noqa: F401 (re-exported API)
from core.evaluate.resume import (
    check_same_settings,
    digest,
    recorded_path,
    resume_config,
    reusable_rows,
    row_keys,
    settings_of,
)
from core.mmmlu import extract_answer, load_csv, select_questions
from core.runs import (
    EventLog,
    JsonlWriter,
    create_run_dir,
    read_json,
    write_json,
    write_jsonl,
)
from core.signals import StopRequest


class _Interrupts(StopRequest):
    """A StopRequest that also logs what it is doing into the run's events."""

    def __init__(self, emit):
        def announce(signum: int) -> None:
            what = "interrupted" if signum == signal.SIGINT else f"{signal.Signals(signum).name} received"
            emit("log", message=f"{what}: stopping at the next generation step; finished questions are kept "
                                f"and 'llmlab eval --resume' runs the rest (Ctrl-C again to stop now)")

        super().__init__(on_signal=announce)


def _optimizations(config: EvalConfig, stats, model, device: str) -> list[str]:
    """What this run really used, read from the engine's stats and the loaded model, in words a report reader understands."""
    import torch

    active = []
    dtype = next(model.parameters()).dtype
    if dtype in (torch.bfloat16, torch.float16):
        active.append(f"{'bf16' if dtype == torch.bfloat16 else 'fp16'} weights and activations")
    if getattr(model.config, "_attn_implementation", None) == "sdpa":
        active.append("SDPA attention kernels")
    if config.mode == "logprob":
        active.append("log-prob scoring: one forward pass per batch, no generation")
    largest = max(stats.batch_sizes, default=0)
    if largest > 1:
        active.append(f"batched inference (up to {largest} rows per batch, left padding)")
    if stats.batches > 1 and largest > 1:  # one batch, or batches of one row, have nothing to sort for
        active.append("prompts sorted by token length to cut padding")
    if config.mode == "generate" and stats.generate_calls:
        if config.backend == "continuous":
            active.append("continuous batching (transformers ContinuousBatchingManager): finished rows free their slots")
            if config.cuda_graphs and device == "cuda":
                active.append("CUDA graphs (continuous batching)")
        else:
            if stats.rows_dropped:
                active.append(f"finished rows dropped from the batch and its KV cache ({stats.rows_dropped} rows)")
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


def _fit_prompts(questions, tokenizer, context: int | None, config: EvalConfig) -> tuple[list[str], list[int]]:
    """(prompts the model can take, characters cut from each one's start).

    A prompt longer than the model's context (less --max-new-tokens in generate mode) loses its
    beginning, as lm-evaluation-harness does: the choices and the answer cue at the end stay.
    """
    prompts = [q.prompt for q in questions]
    cuts = [0] * len(prompts)
    if context is None:
        return prompts, cuts
    budget = context - (config.max_new_tokens if config.mode == "generate" else 0)
    if budget < 1:
        raise UsageError(f"--max-new-tokens {config.max_new_tokens} leaves no room for a question in the model's "
                         f"{context}-token context; use a smaller --max-new-tokens (an answer letter needs only a few)")
    lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=True)["input_ids"]]
    for i, (prompt, length) in enumerate(zip(prompts, lengths)):
        if length <= budget:
            continue
        lo, hi = 1, len(prompt)  # the shortest cut whose remainder fits (binary search on characters)
        while lo < hi:
            mid = (lo + hi) // 2
            if len(tokenizer(prompt[mid:], add_special_tokens=True)["input_ids"]) <= budget:
                hi = mid
            else:
                lo = mid + 1
        prompts[i], cuts[i] = prompt[lo:], lo
    return prompts, cuts


def run_eval(config: EvalConfig, progress: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
             resume: bool = False) -> dict:
    """Run one eval and return its summary (also written to summary.json).

    `progress` receives every event as it is written to events.jsonl (start, resume, progress,
    log, end). `should_stop` is polled between batches, like the first Ctrl-C. With `resume`
    (config from resume_config), config.out is an eval run to continue: its answered questions
    are kept and the rest run. Raises UsageError for bad input; any other failure is recorded as
    status "failed" and re-raised.
    """
    t0 = time.time()
    check_config(config)
    from core.evaluate import demo as demo_mod
    from core.evaluate.loading import (
        check_model_folder,
        load_tokenizer,
        model_context,
        pick_device,
        resolve_data,
        resolve_dtype,
        resolve_model,
    )

    previous = None
    if resume:
        if not config.out:
            raise UsageError("resuming needs the run folder (config.out)")
        resume_config(config.out)  # refuses what is not a resumable eval run (or one still running), in one line
        previous = read_json(Path(config.out) / "config.json")

    # Inputs first: nothing is written until they are known to be usable.
    if config.demo:
        data_path = demo_mod.DEMO_DATA
    else:
        data_path = recorded_path(previous, "data_path") or resolve_data(config.data, config.locale)
    data_path = Path(data_path).absolute()
    questions, notes = select_questions(load_csv(data_path), config.subject, config.limit)
    if config.demo:
        model_path = demo_mod.ensure_demo_model()
    else:
        model_path = recorded_path(previous, "model_path") or resolve_model(config.model)
    model_path = Path(model_path).absolute()
    check_model_folder(model_path)
    tokenizer_start = time.perf_counter()
    tokenizer = load_tokenizer(model_path)
    tokenizer_seconds = time.perf_counter() - tokenizer_start
    context = model_context(model_path)
    dtype_name = resolve_dtype(config.dtype, pick_device())[1]
    prompts, cuts = _fit_prompts(questions, tokenizer, context, config)
    settings = settings_of(config, model_path, data_path, dtype_name, context)
    settings_hash = digest(settings)
    keys = row_keys(settings_hash, questions)
    reused: list[dict] = []
    if resume:
        run_dir = Path(config.out)
        check_same_settings(run_dir, previous, settings, settings_hash)
        reused, needs_cleaning = reusable_rows(run_dir / "results.jsonl", keys)
        if needs_cleaning:  # drop a torn last line and rows that match no question, so each question has one row
            write_jsonl(run_dir / "results.jsonl", reused)
    model_label = demo_mod.DEMO_LABEL if config.demo else config.model
    data_label = _data_label(config, data_path)
    threads = config.threads if config.threads is not None else (1 if config.demo else None)

    if not resume:
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
        threads=threads, questions=len(questions), run_dir=str(run_dir), settings=settings, settings_hash=settings_hash,
    )
    if not resume:
        write_json(run_dir / "config.json", resolved)
    emit("start", kind="eval", pid=os.getpid(), total=len(questions), run_dir=str(run_dir), demo=config.demo)
    if resume:
        emit("resume", reused=len(reused), remaining=len(questions) - len(reused), total=len(questions))
    if config.demo:
        emit("log", message=f"demo: {model_label}, data {data_path.name}")
    for note in notes:
        emit("log", message=note)
    cut_rows = [q.index for q, cut in zip(questions, cuts) if cut]
    if cut_rows:
        shown = ", ".join(map(str, cut_rows[:10])) + (" ..." if len(cut_rows) > 10 else "")
        emit("log", message=f"{len(cut_rows)} of {len(questions)} prompts do not fit the model's {context}-token context"
                            f"{' with --max-new-tokens ' + str(config.max_new_tokens) if config.mode == 'generate' else ''}; "
                            f"their beginning was cut off (rows {shown})")

    done = {row["key"] for row in reused}
    pending = [i for i, key in enumerate(keys) if key not in done]
    rows: list[dict] = list(reused)
    state = {"status": "failed", "error": None, "load_seconds": None, "generate_seconds": None, "stop_signal": None,
             "batch_size": config.batch_size, "dtype": dtype_name, "optimizations": [], "prompt_tokens": 0,
             "tokens_this_run": 0, "reused": len(reused), "truncated": len(cut_rows)}
    import torch

    previous_threads = torch.get_num_threads()
    try:
        with _Interrupts(emit) as interrupts:
            if pending:
                work = [(questions[i], prompts[i], keys[i], cuts[i]) for i in pending]
                _execute(config, work, len(questions), model_path, tokenizer, tokenizer_seconds, threads, state, rows,
                         results, emit, None if resume else resolved, run_dir,
                         lambda: interrupts.requested or (should_stop is not None and should_stop()))
            else:
                emit("log", message="every question already has its answer; nothing left to run")
            state["stop_signal"] = interrupts.signal
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
        try:
            summary = _finish(config, state, rows, questions, resolved, t0)
            emit("end", status=summary["status"], accuracy=summary["accuracy"], n=summary["n"], error=summary.get("error"))
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or state["error"] is None:
                raise
            # The disk is full and the run is failing because of it: the first error is the one to report.
        finally:
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


def _execute(config, work, total, model_path, tokenizer, tokenizer_seconds, threads, state, rows, results, emit,
             resolved, run_dir, stop_requested):
    """Answer `work` = [(question, prompt, key, characters cut)], appending a row per answer to results.jsonl."""
    import torch

    from core.evaluate.engine import EngineStats, auto_batch_size, generate_answers, prompt_lengths, score_choices
    from core.evaluate.loading import load_model, pick_device, resolve_dtype

    if threads:
        torch.set_num_threads(threads)
    device = pick_device()
    dtype, dtype_name = resolve_dtype(config.dtype, device)
    start = time.perf_counter()
    model, tokenizer = load_model(model_path, dtype, device, tokenizer)
    state["load_seconds"] = tokenizer_seconds + time.perf_counter() - start
    if model.generation_config.do_sample:
        emit("log", message="the model's generation_config samples (do_sample=True), so answers vary from run to run; it is kept as the model ships it")
    prompts = [prompt for _, prompt, _, _ in work]
    lengths = prompt_lengths(tokenizer, prompts)
    state["prompt_tokens"] = sum(lengths)
    batch_size = config.batch_size
    if batch_size == "auto":
        batch_size = auto_batch_size(model, lengths, config.max_new_tokens, config.mode)
    batch_size = min(batch_size, len(prompts))
    state.update(batch_size=batch_size, dtype=dtype_name, device=device)
    if resolved is not None:
        write_json(run_dir / "config.json", {**resolved, "batch_size": batch_size, "dtype": dtype_name, "device": device})
    for note in _flag_warnings(config, device):
        emit("log", message=note)

    stats = EngineStats()
    state["scored_tokens"] = 0
    gen_start = time.perf_counter()

    def on_row(i, result):
        """Write a question's line the moment its row ends, then say how far the run is."""
        q, prompt, key, cut = work[i]
        if config.mode == "generate":
            pred, output, new_tokens, extra = extract_answer(result.text), result.text, result.new_tokens, {}
        else:
            pred = max(result, key=result.get)
            output, new_tokens, extra = "", 0, {"logprobs": {k: round(v, 4) for k, v in result.items()}}
        if cut:
            extra["prompt_cut"] = cut  # characters cut from the start of the question to fit the context
        row = {"index": q.index, "subject": q.subject, "question": q.question, "prompt": prompt, "gold": q.gold,
               "pred": pred, "correct": pred == q.gold, "output": output, "new_tokens": new_tokens, **extra, "key": key}
        results.write(row)
        rows.append(row)
        state["tokens_this_run"] += new_tokens
        seconds = time.perf_counter() - gen_start
        state["scored_tokens"] += lengths[i]
        rate = (stats.tokens if config.mode == "generate" else state["scored_tokens"]) / seconds
        emit("progress", done=len(rows), total=total, batch_size=stats.batch_sizes[-1] if stats.batch_sizes else batch_size,
             tokens_per_s=round(rate, 1) if seconds > 0 else None, correct=sum(r["correct"] for r in rows))

    def log(message):
        emit("log", message=message)

    try:
        if config.mode == "generate":
            _, state["batch_size"] = generate_answers(
                model, tokenizer, prompts, max_new_tokens=config.max_new_tokens, batch_size=batch_size,
                stop_at_answer=config.stop_at_answer, static_cache=config.static_cache, compile=config.compile and device == "cuda",
                cuda_graphs=config.cuda_graphs and device == "cuda", free_finished=config.free_finished, backend=config.backend,
                on_row=on_row, should_stop=stop_requested, log=log, stats=stats,
            )
        else:
            _, state["batch_size"] = score_choices(model, tokenizer, prompts, batch_size=batch_size, on_row=on_row,
                                                   should_stop=stop_requested, log=log, stats=stats)
    finally:
        state["generate_seconds"] = time.perf_counter() - gen_start
        state["optimizations"] = _optimizations(config, stats, model, device)


def _finish(config, state, rows, questions, resolved, t0) -> dict:
    from core.evaluate.report import answer_counts, render_report
    from core.hardware import markdown_table, snapshot

    correct = sum(r["correct"] for r in rows)
    tokens = sum(r["new_tokens"] for r in rows)
    gen_s = state["generate_seconds"]
    run_tokens = state["tokens_this_run"]  # a resumed run reuses rows; only this process's tokens count for speed
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
        "tokens_this_run": run_tokens,
        "tokens_per_second": round(run_tokens / gen_s, 1) if config.mode == "generate" and gen_s else None,
        "prompt_tokens": state["prompt_tokens"],
        "reused_rows": state["reused"],
        "truncated_prompts": state["truncated"],
        "stop_signal": state["stop_signal"],
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
