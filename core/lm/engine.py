"""Batched greedy generation, usable without a run directory (A/B/C/D log-prob scoring: core/lm/choices.py).

`generate_answers` is the generation core shared by `llmlab eval` and the benchmarks:
prompts are sorted by token length (less padding), run in left-padded batches through the
model's own `generate` (its generation_config is kept as is), and a row that has finished
is dropped from the batch and its KV cache once enough rows are done for that to pay off.
Each row is handed to `on_row` the step it finishes, so results stream even when every
question is in one batch. Imported only when an eval runs: it imports torch and transformers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from core.compat import cache_kwargs, continuous_batching_config, output_cache
from core.lm.batches import BatchDone, EngineStats, model_device, prompt_lengths, run_batches  # noqa: F401 (re-exported)
from core.lm.choices import LETTER_CONVENTIONS, choice_token_ids, score_choices  # noqa: F401 (re-exported)
from core.mmmlu import answer_state

# --stop-at-answer decodes each unsettled row every step; past this many tokens the first
# line is long enough that an early answer is unlikely, and decoding it every step would cost more
# than it saves, so the row simply runs on.
STOP_CHECK_MAX_TOKENS = 64


@dataclass
class Generation:
    text: str  # the decoded reply, special tokens removed
    new_tokens: int  # tokens the model produced for this row, its EOS token included


Log = Callable[[str], None]
RowDone = Callable[[int, object], None]


def _eos_ids(model) -> set[int]:
    """The tokens `generate` itself stops a row at: the generation_config's, and only those
    (no fallback to the tokenizer's EOS, which would end rows that plain `generate` continues)."""
    eos = model.generation_config.eos_token_id
    if eos is None:
        return set()
    return {int(e) for e in eos} if isinstance(eos, (list, tuple)) else {int(eos)}


def _counts_from_call_start(config) -> bool:
    """Whether a generation setting depends on how many tokens this `generate` call has made.

    Continuing rows in a second call restarts that count, so such a setting would act again
    and the continued rows would differ from one uninterrupted call; then rows are not dropped.
    """
    return bool(config.min_new_tokens or config.begin_suppress_tokens or config.exponential_decay_length_penalty)


class _RowTracker(StoppingCriteria):
    """Watches one `generate` call: when each row finishes, and whether to end the call early.

    A row is finished at its EOS token or, with `row_done`, once its text so far says so (its
    answer is settled). A finished row goes to `on_done` at once. Ending the whole call as soon
    as `prune_after` rows are finished lets the caller drop those rows from the batch and the KV
    cache and go on with the rest from the cache; `should_stop` ends the call at this step.
    """

    def __init__(self, start_len, eos_ids, previous, tokenizer, stats: EngineStats, on_done,
                 row_done=None, prune_after=None, should_stop=None):
        self.start_len = start_len
        self.eos = torch.tensor(sorted(eos_ids) or [-1])
        self.previous = previous  # tokens each row produced in earlier calls
        self.tokenizer = tokenizer
        self.stats = stats
        self.on_done = on_done
        self.row_done = row_done
        self.prune_after = prune_after
        self.should_stop = should_stop
        self.done_at: list[int | None] = [None] * len(previous)  # new-token count when the row ended
        self.checking = [row_done is not None] * len(previous)
        self.stopped = False

    def _tokens(self, input_ids, row) -> list[int]:
        return self.previous[row] + input_ids[row, self.start_len :].tolist()

    def __call__(self, input_ids, scores, **kwargs):
        step = input_ids.shape[1] - self.start_len
        # note: a host sync every step, as generate's own stop check makes one too
        eos_hit = torch.isin(input_ids[:, -1], self.eos.to(input_ids.device)).tolist()
        self.stats.tokens += sum(d is None for d in self.done_at)
        for row, hit in enumerate(eos_hit):
            if self.done_at[row] is not None:
                continue
            if hit:
                self.done_at[row] = step
            elif self.checking[row]:
                tokens = self._tokens(input_ids, row)
                if len(tokens) > STOP_CHECK_MAX_TOKENS:
                    self.checking[row] = False
                elif self.row_done(self.tokenizer.decode(tokens, skip_special_tokens=True)):
                    self.done_at[row] = step
            if self.done_at[row] is not None:
                tokens = self._tokens(input_ids, row)
                self.on_done(row, Generation(self.tokenizer.decode(tokens, skip_special_tokens=True), len(tokens)))
        done = [d is not None for d in self.done_at]
        if self.should_stop is not None and not all(done) and self.should_stop():
            self.stopped = True
            return torch.ones(len(done), dtype=torch.bool, device=input_ids.device)
        if self.prune_after is not None and 0 < sum(done) < len(done) and sum(done) >= self.prune_after:
            done = [True] * len(done)  # end this call; the caller continues the unfinished rows
        return torch.tensor(done, device=input_ids.device)


def _settled_answer(text: str) -> bool:
    return answer_state(text)[1]


def _generate_batch(model, tokenizer, prompts, max_new_tokens, *, stop_at_answer, static_cache, compile, cuda_graphs,
                    free_finished, on_row: RowDone, stats: EngineStats, should_stop=None, stop_when=None, greedy=False):
    """Generate every row of one batch; each row goes to `on_row(position, Generation)` when it ends.

    Rows still running when `should_stop` asks are not reported.
    """
    device = model_device(model)
    enc = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=True)
    ids, mask = enc["input_ids"].to(device), enc["attention_mask"].to(device)
    eos_ids = _eos_ids(model)
    extra = {}
    if model.generation_config.pad_token_id is None and tokenizer.pad_token_id is not None:
        extra["pad_token_id"] = tokenizer.pad_token_id  # only fills a gap; never overrides the model's value
    if greedy:  # scoring tasks (SQuAD, math) ask for greedy whatever the model's own config samples with
        extra.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if static_cache:
        from transformers import CompileConfig

        extra["cache_implementation"] = "static"
        extra["disable_compile"] = not compile
        if compile:
            extra["compile_config"] = CompileConfig(mode="reduce-overhead" if cuda_graphs else "default")
    prune = free_finished and not static_cache and len(prompts) > 1 and not _counts_from_call_start(model.generation_config)

    rows = list(range(len(prompts)))
    tokens: list[list[int]] = [[] for _ in prompts]
    reported = [False] * len(prompts)

    def report(row: int, generation: Generation) -> None:
        reported[row] = True
        on_row(row, generation)

    cache, remaining = None, max_new_tokens
    while rows and remaining > 0:
        live = list(rows)
        tracker = _RowTracker(
            ids.shape[1], eos_ids, [tokens[r] for r in rows], tokenizer, stats, lambda j, g: report(live[j], g),
            row_done=stop_when or (_settled_answer if stop_at_answer else None),
            prune_after=max(1, len(rows) // 8) if prune else None, should_stop=should_stop,
        )
        stats.generate_calls += 1
        out = model.generate(
            input_ids=ids, attention_mask=mask, max_new_tokens=remaining, **cache_kwargs(cache),
            stopping_criteria=StoppingCriteriaList([tracker]), return_dict_in_generate=True, **extra,
        )
        new = out.sequences[:, ids.shape[1] :]
        steps = new.shape[1]
        new_rows = new.tolist()
        keep = []
        for j, row in enumerate(rows):
            end = tracker.done_at[j]
            tokens[row] += new_rows[j][: end if end is not None else steps]
            if end is None:
                keep.append(j)
        remaining -= steps
        if tracker.stopped:
            stats.stopped_mid_batch = True
            return
        if not keep or remaining <= 0:
            break
        # Continue the unfinished rows from the cache: it holds every token but the last one,
        # which the next call feeds in as its first step.
        cache = output_cache(out)
        ids = out.sequences
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], steps))], dim=1)
        if len(keep) < len(rows):
            index = torch.tensor(keep, device=ids.device)
            cache.batch_select_indices(index)
            ids, mask = ids[index], mask[index]
            stats.rows_dropped += len(rows) - len(keep)
        rows = [rows[j] for j in keep]
    for row, done in enumerate(reported):  # rows that ran to max_new_tokens
        if not done:
            report(row, Generation(tokenizer.decode(tokens[row], skip_special_tokens=True), len(tokens[row])))


def _generate_continuous(model, tokenizer, prompts, max_new_tokens, *, cuda_graphs, on_row: RowDone,
                         stats: EngineStats, should_stop=None):
    """transformers' continuous batching: finished requests free their KV pages for queued ones.

    Results are taken from the manager as each request finishes, so they stream like the
    generate backend's.
    """
    config = copy.deepcopy(model.generation_config)  # the model's own settings, only the length set
    config.max_new_tokens = max_new_tokens
    if config.pad_token_id is None:
        config.pad_token_id = tokenizer.pad_token_id
    inputs = [tokenizer(p, add_special_tokens=True)["input_ids"] for p in prompts]
    sizing = {}
    if model_device(model).type != "cuda":
        # Off CUDA the default cache is sized from free RAM and every step pays for it: 13 s
        # instead of 1 s for 4 short prompts on the tiny test model. Size it for these requests.
        page = 64
        pages = sum(-(-(len(ids) + max_new_tokens) // page) for ids in inputs)
        sizing = {"page_size": page, "num_blocks": pages + len(inputs), "max_batch_tokens": max(512, max(map(len, inputs)))}
    manager = model.init_continuous_batching(
        generation_config=config,
        continuous_batching_config=continuous_batching_config(use_cuda_graph=bool(cuda_graphs), **sizing),
    )
    manager.start()
    stats.generate_calls += 1
    try:
        request_ids = manager.add_requests(inputs=inputs, max_new_tokens=max_new_tokens)
        position = {rid: i for i, rid in enumerate(request_ids)}
        left = set(request_ids)
        while left:
            if should_stop is not None and should_stop():
                stats.stopped_mid_batch = True
                break
            result = manager.get_result(timeout=0.5)
            if result is None:
                if not manager.is_running():
                    raise RuntimeError("transformers' continuous batching stopped before every request finished")
                continue
            if result.request_id not in left or not result.is_finished():
                continue
            left.discard(result.request_id)
            generated = list(result.generated_tokens)
            stats.tokens += len(generated)
            on_row(position[result.request_id], Generation(tokenizer.decode(generated, skip_special_tokens=True), len(generated)))
    finally:
        manager.stop(block=True)


@torch.inference_mode()
def generate_answers(
    model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int = 512, batch_size: int = 16,
    stop_at_answer: bool = False, static_cache: bool = False, compile: bool = False,
    cuda_graphs: bool = False, free_finished: bool = True, backend: str = "generate",
    stop_when: Callable[[str], bool] | None = None, greedy: bool = False,
    on_row: Callable[[int, Generation], None] | None = None,
    on_batch: Callable[[BatchDone], None] | None = None, should_stop: Callable[[], bool] | None = None,
    log: Log | None = None, stats: EngineStats | None = None,
) -> tuple[list[Generation | None], int]:
    """Greedy replies (as the model's generation_config says) for every prompt.

    The tokenizer must pad on the left. `on_row(index, generation)` is called the step a row
    finishes; `should_stop` is polled every step and ends the run there (rows still running are
    not reported). `stop_when(text)` ends a row once its reply so far satisfies it (checked over the
    first STOP_CHECK_MAX_TOKENS tokens; e.g. a newline for SQuAD); `greedy` overrides a sampling
    generation_config. Returns (one Generation per prompt, in input order, None where the run was
    stopped first; the batch size in use at the end, smaller than asked after an out-of-memory
    retry). `stats`, when given, is filled with what the engine did.
    """
    if tokenizer.padding_side != "left":
        raise ValueError("generate_answers needs a tokenizer with padding_side='left'")
    stats = stats if stats is not None else EngineStats()
    lengths = prompt_lengths(tokenizer, prompts)

    def run_batch(chunk, report):
        texts = [prompts[i] for i in chunk]
        if backend == "continuous":
            return _generate_continuous(model, tokenizer, texts, max_new_tokens, cuda_graphs=cuda_graphs, on_row=report,
                                        stats=stats, should_stop=should_stop)
        return _generate_batch(
            model, tokenizer, texts, max_new_tokens, stop_at_answer=stop_at_answer, static_cache=static_cache,
            compile=compile, cuda_graphs=cuda_graphs, free_finished=free_finished, on_row=report, stats=stats,
            should_stop=should_stop, stop_when=stop_when, greedy=greedy,
        )

    return run_batches(
        len(prompts), lengths, batch_size, run_batch, lambda chunk, res: sum(g.new_tokens for g in res),
        on_row, on_batch, should_stop, log, stats,
    )
