"""One MMMLU eval run on the shared lifecycle (core/lifecycle.py): resolve inputs, call the engine, summarise.

`run_eval(EvalConfig(...))` is the API the CLI, the app and the benchmarks share. Inputs are
checked before the run directory is made, so a typo leaves nothing behind.

Resuming: every results.jsonl row carries a `key` (a hash of the run's settings, the question's
index and its prompt) and config.json the settings it was made under (`settings`,
`settings_hash`: model, sha256 of the data file, dtype, generation options, prompt template).
`run_eval(resume_config(run_dir), resume=True)` keeps the rows whose key still matches, runs
only the questions without one, and refuses in one line when the settings or data changed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from core.distributed import gather, shard, world
from core.errors import UsageError
from core.eval import config as eval_config
from core.eval.config import BACKENDS, DTYPES, MODES, EvalConfig, check_config  # noqa: F401 (re-exported API)
from core.eval.report_notes import flag_warnings, optimizations_used
from core.eval.resume import (
    check_same_settings,
    digest,
    recorded_path,
    resume_config,
    reusable_rows,
    row_keys,
    settings_of,
)
from core.lifecycle import RunContext, run_job
from core.lm.chat import user_turn
from core.mmmlu import extract_answer, load_csv, select_questions
from core.qa.sheet import AnswerSheet, QuestionJob, occurrence_ids, qa_summary
from core.runlog import Resume
from core.runs import CONFIG, RESULTS, read_json, write_jsonl


def _fit_prompts(questions, tokenizer, context: int | None, config: EvalConfig) -> tuple[list[str], list[int]]:
    """(prompts the model can take, characters cut from each one's start), as the model sees them (with --chat, each
    question is the user turn of the chat template; a cut takes the question's start, never the template's).

    A prompt longer than the model's context (less --max-new-tokens in generate mode) loses its
    beginning, as lm-evaluation-harness does: the choices and the answer cue at the end stay.
    """
    show = (lambda text: user_turn(tokenizer, text)) if config.chat else (lambda text: text)
    texts = [q.prompt for q in questions]
    prompts = [show(t) for t in texts]
    cuts = [0] * len(prompts)
    if context is None:
        return prompts, cuts
    budget = context - (config.max_new_tokens if config.mode == "generate" else 0)
    if budget < 1:
        raise UsageError(f"--max-new-tokens {config.max_new_tokens} leaves no room for a question in the model's "
                         f"{context}-token context; use a smaller --max-new-tokens (an answer letter needs only a few)")
    lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=True)["input_ids"]]
    for i, (text, length) in enumerate(zip(texts, lengths)):
        if length <= budget:
            continue
        lo, hi = 1, len(text)  # the shortest cut of the question whose remainder fits (binary search on characters)
        while lo < hi:
            mid = (lo + hi) // 2
            if len(tokenizer(show(text[mid:]), add_special_tokens=True)["input_ids"]) <= budget:
                hi = mid
            else:
                lo = mid + 1
        prompts[i], cuts[i] = show(text[lo:]), lo
    return prompts, cuts


@dataclass
class EvalState:
    """What the run learns as it goes, for its summary: filled by EvalJob._answer."""

    load_seconds: float | None = None
    generate_seconds: float | None = None
    batch_size: int | str = "auto"
    dtype: str = ""
    device: str | None = None
    prompt_tokens: int = 0
    tokens_this_run: int = 0
    scored_tokens: int = 0
    optimizations: list[str] = field(default_factory=list)


class EvalJob(QuestionJob):
    kind = "eval"
    stop_message = "stopping at the next generation step; finished questions are kept and 'llmlab eval --resume' runs the rest"

    def __init__(self, config: EvalConfig, resume: bool = False, shared=None, adapter_index: int = 0) -> None:
        """`shared` (a core.eval.multi.SharedModel) lends a base model already loaded with every adapter; this
        run switches to adapter `adapter_index` instead of loading its own copy."""
        super().__init__(config, resume=resume)
        self.shared, self.adapter_index = shared, adapter_index
        self.gen_start: float | None = None

    def prepare(self) -> None:
        """Data, model folder, tokenizer and prompts: bad input stops here, before a folder exists."""
        from core.lm import demo as demo_mod
        from core.lm.choice import choose_model
        from core.lm.loading import model_context, pick_device, resolve_data, resolve_dtype

        config = self.config
        config.validate()
        previous = None
        if self.resume:
            if not config.out:
                raise UsageError("resuming needs the run folder (config.out)")
            resume_config(config.out)  # refuses what is not a resumable eval run (or one still running), in one line
            previous = read_json(Path(config.out) / CONFIG)
        data_path = eval_config.DEMO_DATA if config.demo else (
            recorded_path(previous, "data_path") or resolve_data(config.data, config.locale))
        self.data_path = Path(data_path).absolute()
        self.questions, self.notes = select_questions(load_csv(self.data_path), config.subject, config.limit)
        self.total = len(self.questions)
        if len(config.adapter) > 1:
            raise UsageError("one EvalJob evaluates one adapter; core.eval.multi runs several over one base")
        start = time.perf_counter()
        recorded = recorded_path(previous, "model_path")  # a resumed run uses the folder it started with
        self.choice = choose_model(str(recorded) if recorded else config.model, config.adapter, config.demo,
                                   quantize=config.quantize, chat=config.chat)
        self.tokenizer_seconds = time.perf_counter() - start
        self.model_path, self.adapters, self.tokenizer = self.choice.path, self.choice.adapters, self.choice.tokenizer
        self.context = model_context(self.model_path)
        self.state = EvalState(batch_size=config.batch_size, dtype=resolve_dtype(config.dtype, pick_device())[1])
        self.prompts, self.cuts = _fit_prompts(self.questions, self.tokenizer, self.context, config)
        self.settings = settings_of(config, self.model_path, self.data_path, self.state.dtype, self.context, self.adapters)
        self.settings_hash = digest(self.settings)
        self.keys = row_keys(self.settings_hash, self.questions)
        self.reused: list[dict] = []
        if self.resume:
            run_dir = Path(config.out)
            check_same_settings(run_dir, previous, self.settings, self.settings_hash)
            self.reused, needs_cleaning = reusable_rows(run_dir / RESULTS, self.keys)
            if needs_cleaning:  # drop a torn last line and rows that match no question, so each question has one row
                write_jsonl(run_dir / RESULTS, self.reused)
        self.qids = occurrence_ids([str(q.index) for q in self.questions])
        self.rows: list[dict] = list(self.reused)
        self.model_label = (demo_mod.DEMO_LABEL if config.demo else config.model) + \
            "".join(f" + adapter {a}" for a in self.adapters)
        self.data_label = _data_label(config, self.data_path)
        self.threads = config.threads if config.threads is not None else (1 if config.demo else None)

    def config_record(self) -> dict:
        record = asdict(self.config)
        if self.config.demo:  # record what the demo really used, not the unused defaults
            record.update(model=str(self.model_path), data=str(self.data_path))
        record.update(
            model_path=str(self.model_path), data_path=str(self.data_path), data_label=self.data_label,
            model_label=self.model_label, adapter_paths=[str(a) for a in self.adapters], threads=self.threads,
            questions=len(self.questions), run_dir=self.config.out,
            settings=self.settings, settings_hash=self.settings_hash,
        )
        return record

    def run(self, ctx: RunContext) -> dict:
        config, questions = self.config, self.questions
        if self.resume:
            ctx.emit(Resume(reused=len(self.reused), remaining=len(questions) - len(self.reused), total=len(questions)))
        if config.demo:
            ctx.log(f"demo: {self.model_label}, data {self.data_path.name}")
        for note in self.notes + self.choice.notes:
            ctx.log(note)
        cut_rows = [q.index for q, cut in zip(questions, self.cuts) if cut]
        if cut_rows:
            shown = ", ".join(map(str, cut_rows[:10])) + (" ..." if len(cut_rows) > 10 else "")
            ctx.log(f"{len(cut_rows)} of {len(questions)} prompts do not fit the model's {self.context}-token context"
                    f"{' with --max-new-tokens ' + str(config.max_new_tokens) if config.mode == 'generate' else ''}; "
                    f"their beginning was cut off (rows {shown})")
        done = {row["key"] for row in self.reused}
        pending = [i for i, key in enumerate(self.keys) if key not in done]
        w = world()
        mine = shard(pending, w)  # with several processes: this rank's contiguous share, rank 0 first
        if w.distributed and ctx.main:
            ctx.log(f"{w.size} processes answer {len(pending)} questions, about {len(mine)} each; the other ranks' "
                    f"rows arrive when they finish")
        with AnswerSheet(ctx, self.total, rows=self.reused) as sheet:
            self.rows = sheet.rows
            if mine:
                import torch

                previous_threads = torch.get_num_threads()
                try:
                    self._answer(ctx, mine, sheet)
                finally:
                    torch.set_num_threads(previous_threads)
            elif not pending:
                ctx.log("every question already has its answer; nothing left to run")
            if w.distributed:
                self._gather(ctx, sheet)
        if ctx.main and pending:  # one order for any number of processes: the questions'
            position = {key: i for i, key in enumerate(self.keys)}
            self.rows.sort(key=lambda row: position.get(row["key"], len(position)))
            write_jsonl(ctx.run_dir / RESULTS, self.rows)
        return {"status": qa_summary(self.rows, self.total)["status"]}

    def _gather(self, ctx: RunContext, sheet: AnswerSheet) -> None:
        """Rank 0 takes the other ranks' rows and token counts; its time then spans the slowest rank."""
        state = self.state
        shares = gather({"rows": sheet.rows[len(self.reused):], "tokens": state.tokens_this_run,
                         "scored": state.scored_tokens, "prompt_tokens": state.prompt_tokens})
        if not ctx.main:
            return
        for share in shares[1:]:
            for row in share["rows"]:
                sheet.add(row, batch_size=state.batch_size)
            state.tokens_this_run += share["tokens"]
            state.scored_tokens += share["scored"]
            state.prompt_tokens += share["prompt_tokens"]
        if self.gen_start is not None:
            state.generate_seconds = time.perf_counter() - self.gen_start

    def _answer(self, ctx: RunContext, pending: list[int], sheet: AnswerSheet) -> None:
        """Answer the questions at `pending`, appending each one's row to results.jsonl as its row ends."""
        import torch

        from core.lm.batch_plan import auto_batch_size
        from core.lm.choice import load_for_generation
        from core.lm.engine import EngineStats, generate_answers, prompt_lengths, score_choices
        from core.lm.loading import pick_device, resolve_dtype

        config, state = self.config, self.state
        if self.threads:
            torch.set_num_threads(self.threads)
        device = pick_device()
        state.dtype = resolve_dtype(config.dtype, device)[1]
        start = time.perf_counter()
        if self.shared is not None:  # one base model for several adapters: switch, do not reload
            loaded = self.shared.get()
            loaded.use_adapter(self.adapter_index)
        else:
            loaded = load_for_generation(self.choice, config.dtype)
        model, tokenizer, state.dtype = loaded.model, loaded.tokenizer, loaded.dtype
        state.load_seconds = self.tokenizer_seconds + time.perf_counter() - start
        if model.generation_config.do_sample:
            ctx.log("the model's generation_config samples (do_sample=True), so answers vary from run to run; "
                    "it is kept as the model ships it")
        prompts = [self.prompts[i] for i in pending]
        lengths = prompt_lengths(tokenizer, prompts)
        state.prompt_tokens = sum(lengths)
        batch_size = config.batch_size
        if batch_size == "auto":
            batch_size = auto_batch_size(model, lengths, config.max_new_tokens, config.mode)
        state.batch_size, state.device = min(batch_size, len(prompts)), device
        if not self.resume:
            ctx.write_config({**self.config_record(), "batch_size": state.batch_size, "dtype": state.dtype,
                              "device": device})
        for note in flag_warnings(config, device):
            ctx.log(note)

        stats = EngineStats()
        gen_start = self.gen_start = time.perf_counter()

        def on_row(j, result):
            """Write a question's line the moment its row ends, then say how far the run is."""
            i = pending[j]
            q, prompt, key, cut = self.questions[i], self.prompts[i], self.keys[i], self.cuts[i]
            if config.mode == "generate":
                pred, output, new_tokens, extra = extract_answer(result.text), result.text, result.new_tokens, {}
            else:
                pred = max(result, key=result.get)
                output, new_tokens, extra = "", 0, {"logprobs": {k: round(v, 4) for k, v in result.items()}}
            if cut:
                extra["prompt_cut"] = cut  # characters cut from the start of the question to fit the context
            row = {"qid": self.qids[i], "index": q.index, "subject": q.subject, "question": q.question, "prompt": prompt,
                   "gold": q.gold, "pred": pred, "correct": pred == q.gold, "output": output, "new_tokens": new_tokens,
                   "options": q.choices, **extra, "key": key}
            state.tokens_this_run += new_tokens
            state.scored_tokens += lengths[j]
            seconds = time.perf_counter() - gen_start
            rate = (stats.tokens if config.mode == "generate" else state.scored_tokens) / seconds if seconds > 0 else None
            sheet.add(row, batch_size=stats.batch_sizes[-1] if stats.batch_sizes else state.batch_size,
                      tokens_per_s=round(rate, 1) if rate else None)

        try:
            if config.mode == "generate":
                _, state.batch_size = generate_answers(
                    model, tokenizer, prompts, max_new_tokens=config.max_new_tokens, batch_size=state.batch_size,
                    stop_at_answer=config.stop_at_answer, static_cache=config.static_cache,
                    compile=config.compile and device == "cuda", cuda_graphs=config.cuda_graphs and device == "cuda",
                    free_finished=config.free_finished, backend=config.backend, on_row=on_row,
                    should_stop=ctx.should_stop, log=ctx.log, stats=stats,
                )
            else:
                _, state.batch_size = score_choices(model, tokenizer, prompts, batch_size=state.batch_size, on_row=on_row,
                                                    letters=config.letters, should_stop=ctx.should_stop, log=ctx.log,
                                                    stats=stats)
        finally:
            state.generate_seconds = time.perf_counter() - gen_start
            state.optimizations = optimizations_used(config, stats, model, device)

    def oom_message(self, exc) -> str:
        return f"{exc}; try --dtype bf16, a smaller --max-new-tokens or --mode logprob"

    def finish(self, ctx: RunContext, summary: dict) -> None:
        """The eval figures, from the rows and the state, whatever the status."""
        from core.eval.report import answer_counts

        config, state, rows = self.config, self.state, self.rows
        gen_s = state.generate_seconds
        run_tokens = state.tokens_this_run  # a resumed run reuses rows; only this process's tokens count for speed
        figures = qa_summary(rows, self.total)
        figures.pop("status")  # the lifecycle has settled it
        summary.update({
            **figures,
            "load_seconds": None if state.load_seconds is None else round(state.load_seconds, 3),
            "generate_seconds": None if gen_s is None else round(gen_s, 3),
            "tokens_generated": sum(r["new_tokens"] for r in rows), "tokens_this_run": run_tokens,
            "tokens_per_second": round(run_tokens / gen_s, 1) if config.mode == "generate" and gen_s else None,
            "prompt_tokens": state.prompt_tokens, "reused_rows": len(self.reused),
            "truncated_prompts": sum(1 for cut in self.cuts if cut), "answer_counts": answer_counts(r["pred"] for r in rows),
            "mode": config.mode, "batch_size": state.batch_size, "dtype": state.dtype, "device": state.device,
            "model": str(self.model_path) if config.demo else config.model, "model_label": self.model_label,
            "data": self.data_label, "data_path": str(self.data_path), "subject": config.subject, "limit": config.limit,
            "max_new_tokens": config.max_new_tokens, "demo": config.demo, "optimizations": state.optimizations,
            "adapter": str(self.adapters[0]) if self.adapters else None,
            "quantization": self.choice.quantization, "chat": config.chat,
            "letters": config.letters if config.mode == "logprob" else None,
            "first_prompt": self.prompts[0] if self.prompts else None,
        })
        if config.demo:
            summary["note"] = "demo run: random-weight model, accuracy is meaningless"

    def report(self, run_dir: Path, summary: dict) -> str:
        from core.eval.report import render_report
        from core.hardware import markdown_table

        return render_report(summary, self.rows, markdown_table(summary["hardware"]))

    def end_fields(self, summary: dict) -> dict:
        return {"accuracy": summary["accuracy"], "n": summary["n"]}

    def closing_line(self, summary: dict, run_dir: Path) -> str | None:
        """Accuracy, time, speed and the answer distribution, as the terminal shows them at the end."""
        s = summary
        if "accuracy" not in s:
            return None
        acc = "-" if s["accuracy"] is None else f"{s['accuracy']:.1%}"
        demo = " [DEMO: random weights, meaningless]" if s.get("demo") else ""
        phase = "generate" if s["mode"] == "generate" else "score"
        timing = (f"time {s['total_seconds']:.1f} s (load {s['load_seconds'] or 0:.1f} s, {phase} "
                  f"{s['generate_seconds'] or 0:.1f} s")
        if s["tokens_per_second"] is not None and s["tokens_generated"]:
            tokens = s["tokens_this_run"] if s.get("reused_rows") else s["tokens_generated"]
            timing += f", {tokens} {'new ' if s.get('reused_rows') else ''}tokens at {s['tokens_per_second']:.0f} tokens/s"
        answers = ", ".join(f"{k} {v}" for k, v in s["answer_counts"].items())
        return "\n".join([f"accuracy {acc} ({s['correct']}/{s['n']}, mode {s['mode']}){demo}",
                          timing + f"; batch {s['batch_size']}, {s['dtype']})", f"answers: {answers}",
                          f"report: {run_dir}/report.md"])


def run_eval(config: EvalConfig, progress: Callable[[dict], None] | None = None, should_stop: Callable[[], bool] | None = None,
             resume: bool = False) -> dict:
    """Run one eval and return its summary (also written to summary.json).

    `progress` receives every event as it is written to events.jsonl (start, resume, progress,
    log, end). `should_stop` is polled every generation step, like the first Ctrl-C. With `resume`
    (config from resume_config), config.out is an eval run to continue: its answered questions
    are kept and the rest run. Raises UsageError for bad input; any other failure is recorded as
    status "failed" and re-raised.
    """
    return run_job(EvalJob(config, resume=resume), progress=progress, should_stop=should_stop)


def _data_label(config: EvalConfig, data_path: Path) -> str:
    """What the data is, for people: the Hub name and file, or the local path."""
    if config.demo:
        return f"{data_path.name} (demo questions)"
    if not Path(config.data).expanduser().exists():
        from core.lm.loading import mmmlu_filename

        return f"{config.data} {mmmlu_filename(config.locale)}"
    return str(data_path)


