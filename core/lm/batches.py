"""What generation and scoring share: batches of prompts (longest first, halved on out-of-memory), their stats.

Split from core/lm/engine.py so that choice scoring (core/lm/choices.py) and generation run batches the
same way without importing each other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import torch

from core.memory import OOM_ERRORS, HalvingSize


@dataclass
class BatchDone:
    """What `on_batch` receives after each batch: results for `indices` (positions in `prompts`)."""

    indices: list[int]
    results: list
    batch_size: int
    tokens: int  # generated tokens (generate) or prompt tokens (logprob) in this batch
    seconds: float


@dataclass
class EngineStats:
    """What the engine really did, for the run's `optimizations` and its live rate."""

    batches: int = 0            # batches started (an out-of-memory retry starts another)
    batch_sizes: list[int] = field(default_factory=list)
    generate_calls: int = 0     # model.generate calls (a batch continues in a new call after dropping rows)
    rows_dropped: int = 0       # finished rows taken out of a running batch and its KV cache
    tokens: int = 0             # new tokens so far, counted as they are made
    oom_retries: int = 0
    stopped_mid_batch: bool = False


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def run_batches(count, lengths, batch_size, run_batch, measure, on_row, on_batch, should_stop, log, stats):
    """Longest prompts first in batches of `batch_size`; on out-of-memory, halve and retry.

    `run_batch(chunk, report)` calls `report(position in chunk, result)` once per finished row.
    Rows reported before an out-of-memory error are kept; only the rest run again. Returns the
    results in input order (None for questions never run because of a stop) and the batch size
    that finally worked.
    """
    order = sorted(range(count), key=lambda i: (-lengths[i], i))
    results: list = [None] * count
    size = HalvingSize(batch_size, "out of GPU memory even with batch size 1")
    while not stats.stopped_mid_batch and not (should_stop is not None and should_stop()):
        chunk = [i for i in order if results[i] is None][: size.size]
        if not chunk:
            break
        start = time.perf_counter()
        done: list[int] = []

        def report(j, result, chunk=chunk, done=done):
            i = chunk[j]
            results[i] = result
            done.append(i)
            if on_row is not None:
                on_row(i, result)

        stats.batches += 1
        stats.batch_sizes.append(len(chunk))
        try:
            run_batch(chunk, report)
        except OOM_ERRORS:
            size.halve(len(chunk))
            stats.oom_retries += 1
            if log:
                log(f"out of GPU memory with {len(chunk)} rows in a batch; retrying with batch size {size.size}")
            continue
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        if on_batch is not None and done:
            batch_results = [results[i] for i in done]
            on_batch(BatchDone(done, batch_results, len(chunk), measure(done, batch_results), seconds))
    return results, size.size


def prompt_lengths(tokenizer, prompts: Sequence[str]) -> list[int]:
    return [len(ids) for ids in tokenizer(list(prompts), add_special_tokens=True)["input_ids"]]
