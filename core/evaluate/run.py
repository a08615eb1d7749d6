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
import hashlib
import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from core.errors import OutOfMemory, UsageError
from core.mmmlu import PROMPT_TEMPLATE, extract_answer, load_csv, select_questions
from core.runs import (
    EventLog,
    JsonlWriter,
    create_run_dir,
    iter_jsonl,
    load_run_config,
    read_json,
    write_json,
    write_jsonl,
)
from core.signals import StopRequest

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

    def __post_init__(self):
        # The engine compiles only the static-cache decode step, so compile without it would
        # do nothing while the report listed it; the API gets what --compile gets.
        if self.compile:
            self.static_cache = True


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


class _Interrupts(StopRequest):
    """A StopRequest that also logs what it is doing into the run's events."""

    def __init__(self, emit):
        def announce(signum: int) -> None:
            what = "interrupted" if signum == signal.SIGINT else f"{signal.Signals(signum).name} received"
            emit("log", message=f"{what}: finishing the current batch, then stopping (Ctrl-C again to stop now)")

        super().__init__(on_signal=announce)


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


def resume_config(run_dir: str | Path) -> EvalConfig:
    """The options of the eval run in `run_dir`, to continue it with run_eval(..., resume=True)."""
    path, config = load_run_config(run_dir, "eval")
    if not config.get("settings_hash"):
        raise UsageError(f"{path} was written by an older llmlab that did not key its results, so it cannot be resumed; start a new run")
    known = EvalConfig.__dataclass_fields__
    cfg = EvalConfig(**{k: v for k, v in config.items() if k in known})
    cfg.out = str(path)
    return cfg


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _settings(config: EvalConfig, model_path: Path, data_path: Path, dtype: str, context: int | None) -> dict:
    """Everything a result row depends on; a resume must match all of it."""
    from fnmatch import fnmatch

    from core.evaluate.demo import DEMO_MODEL_NAME
    from core.evaluate.loading import MODEL_FILES

    if config.demo:  # rebuilt the same way in every cache folder
        model = {"model": DEMO_MODEL_NAME}
    else:
        files = sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in model_path.iterdir()
                       if f.is_file() and any(fnmatch(f.name, pattern) for pattern in MODEL_FILES))
        model = {"model": str(model_path), "model_files": _digest(files)}
    settings = {**model, "data_sha256": _file_sha256(data_path), "prompt_template": _digest(PROMPT_TEMPLATE),
                "mode": config.mode, "dtype": dtype, "context": context}
    if config.mode == "generate":
        settings.update(max_new_tokens=config.max_new_tokens, stop_at_answer=config.stop_at_answer, backend=config.backend,
                        static_cache=config.static_cache, compile=config.compile, cuda_graphs=config.cuda_graphs)
    return settings


def _row_key(settings_hash: str, question) -> str:
    return _digest([settings_hash, str(question.index), question.prompt])


_SETTING_WORDS = {"data_sha256": "the data file changed (its sha256 differs)", "model": "the model folder changed",
                  "model_files": "the model's files changed", "prompt_template": "llmlab's prompt template changed"}


def _check_same_settings(run_dir: Path, previous: dict, settings: dict, settings_hash: str) -> None:
    if previous.get("settings_hash") == settings_hash:
        return
    old = previous.get("settings") or {}
    changed = [_SETTING_WORDS.get(k, f"{k} was {old.get(k)!r}, now {settings.get(k)!r}")
               for k in sorted(set(old) | set(settings)) if old.get(k) != settings.get(k)]
    raise UsageError(f"cannot resume {run_dir}: {'; '.join(changed) or 'its settings changed'} since it started, "
                     f"so its answers would not be comparable; start a new run")


def _reusable_rows(path: Path, keys: list[str]) -> tuple[list[dict], bool]:
    """(rows to keep: one per expected key, first seen wins; whether results.jsonl needs cleaning).

    A torn last line (a write cut short by a crash or kill) is not a row: that question runs again.
    """
    wanted, kept, seen, lines = set(keys), [], set(), 0
    for row in iter_jsonl(path):
        lines += 1
        key = row.get("key")
        if key in wanted and key not in seen:
            seen.add(key)
            kept.append(row)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return kept, False
    complete_lines = raw.count(b"\n")
    return kept, len(kept) != lines or lines != complete_lines or not raw.endswith(b"\n") and bool(raw)


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


def _recorded_path(previous: dict | None, key: str) -> Path | None:
    """A path a resumed run recorded, when it is still there (so a resume works from any folder)."""
    value = (previous or {}).get(key)
    return Path(value) if value and Path(value).exists() else None


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
    _check(config)
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
        data_path = _recorded_path(previous, "data_path") or resolve_data(config.data, config.locale)
    data_path = Path(data_path).absolute()
    questions, notes = select_questions(load_csv(data_path), config.subject, config.limit)
    if config.demo:
        model_path = demo_mod.ensure_demo_model()
    else:
        model_path = _recorded_path(previous, "model_path") or resolve_model(config.model)
    model_path = Path(model_path).absolute()
    check_model_folder(model_path)
    tokenizer_start = time.time()
    tokenizer = load_tokenizer(model_path)
    tokenizer_seconds = time.time() - tokenizer_start
    context = model_context(model_path)
    dtype_name = resolve_dtype(config.dtype, pick_device())[1]
    prompts, cuts = _fit_prompts(questions, tokenizer, context, config)
    settings = _settings(config, model_path, data_path, dtype_name, context)
    settings_hash = _digest(settings)
    keys = [_row_key(settings_hash, q) for q in questions]
    reused: list[dict] = []
    if resume:
        run_dir = Path(config.out)
        _check_same_settings(run_dir, previous, settings, settings_hash)
        reused, needs_cleaning = _reusable_rows(run_dir / "results.jsonl", keys)
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

    from core.evaluate.engine import (
        auto_batch_size,
        generate_answers,
        prompt_lengths,
        score_choices,
    )
    from core.evaluate.loading import load_model, pick_device, resolve_dtype

    if threads:
        torch.set_num_threads(threads)
    device = pick_device()
    dtype, dtype_name = resolve_dtype(config.dtype, device)
    start = time.time()
    model, tokenizer = load_model(model_path, dtype, device, tokenizer)
    state["load_seconds"] = tokenizer_seconds + time.time() - start
    if model.generation_config.do_sample:
        emit("log", message="the model's generation_config samples (do_sample=True), so answers vary from run to run; it is kept as the model ships it")
    prompts = [prompt for _, prompt, _, _ in work]
    lengths = prompt_lengths(tokenizer, prompts)
    state["prompt_tokens"] = sum(lengths)
    batch_size = config.batch_size
    if batch_size == "auto":
        batch_size = auto_batch_size(model, lengths, config.max_new_tokens, config.mode)
    batch_size = min(batch_size, len(prompts))
    attn = getattr(model.config, "_attn_implementation", None)
    state.update(batch_size=batch_size, dtype=dtype_name, device=device,
                 optimizations=_optimizations(config, batch_size, dtype_name, device, attn))
    if resolved is not None:
        write_json(run_dir / "config.json", {**resolved, "batch_size": batch_size, "dtype": dtype_name, "device": device})
    for note in _flag_warnings(config, device):
        emit("log", message=note)

    gen_start = time.time()

    def on_batch(batch):
        for i, result in zip(batch.indices, batch.results):
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
