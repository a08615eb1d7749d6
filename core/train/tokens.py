"""Text in, token ids out, for the kinds that train: tokenized once, in several processes, into token shards.

- `tokenize_rows`: one batched call of the fast tokenizer; EOS closes every row.
- `map_chunks`: a function over chunks of rows in `num_proc` processes (torch's and the tokenizer's
  threads are not fork-safe, so they are spawned), results in input order, with a bounded number of
  chunks in flight: the reader never runs ahead of the writer by more than a few chunks, so memory
  does not grow with the corpus.
- `write_corpus_shards`: a `core.corpus.CorpusStream` tokenized into a token shard folder
  (`core.shards`): "train" and "eval" splits, the rows counted, written crash-safe.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from core.shards import SHARD_TOKENS, ShardWriter

_SHARED = None  # what a worker process was started with (map_chunks' `shared`)


def tokenizer_fingerprint(tok) -> str:
    """What identifies a tokenizer's ids: its class, size, end token and how it splits a sample."""
    sample = tok("Hello world, 你好 <|endoftext|>", add_special_tokens=False)["input_ids"]
    return f"{type(tok).__name__}:{len(tok)}:{tok.eos_token_id}:{sample}"


def batch_ids(tok, texts: list[str], add_special_tokens: bool = False) -> list[list[int]]:
    """Each text's ids, in one batched call. A fast tokenizer's own (Rust) backend is called directly: the same ids
    as `tok(texts)["input_ids"]`, without the Python wrapper's batch dictionary, which costs a third of the time."""
    backend = getattr(tok, "backend_tokenizer", None) if getattr(tok, "is_fast", False) else None
    if backend is not None:
        return [e.ids for e in backend.encode_batch(list(texts), add_special_tokens=add_special_tokens)]
    return tok(list(texts), add_special_tokens=add_special_tokens, verbose=False)["input_ids"]


def tokenize_rows(texts: list[str], tok) -> np.ndarray:
    """One batched call of the fast (Rust) tokenizer; EOS closes every row."""
    if not texts:
        return np.zeros(0, dtype=np.int32)
    eos = tok.eos_token_id
    return np.fromiter((t for row in batch_ids(tok, texts) for t in (*row, eos)), dtype=np.int32)


def tokenize_chunk(tok, texts: list[str]) -> np.ndarray:
    """tokenize_rows as map_chunks calls it."""
    return tokenize_rows(texts, tok)


def _start_worker(shared) -> None:
    global _SHARED
    import os

    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one process per core already; no thread pool inside each
    _SHARED = shared


def _call(fn: Callable, chunk):
    return fn(_SHARED, chunk)


def map_chunks(fn: Callable, chunks: Iterable, shared, num_proc: int = 1) -> Iterator:
    """`fn(shared, chunk)` for every chunk, in order; in `num_proc` spawned processes when it is above 1.

    At most 2 x num_proc chunks are read ahead of the results taken.
    """
    if num_proc <= 1:
        for chunk in chunks:
            yield fn(shared, chunk)
        return
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(num_proc, initializer=_start_worker, initargs=(shared,)) as pool:
        pending: deque = deque()
        for chunk in chunks:
            pending.append(pool.apply_async(_call, (fn, chunk)))
            if len(pending) >= 2 * num_proc:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def write_corpus_shards(folder: Path, stream, tok, num_proc: int = 1, shard_tokens: int = SHARD_TOKENS,
                        **extra) -> Path:
    """Tokenize `stream` (a CorpusStream) into a token shard folder at `folder`: its training rows as "train", its
    held-out rows as "eval". The index records the rows, the source and how the held-out rows were chosen. On any
    error (a full disk, bad input found partway) nothing is left but a temporary folder, removed on the way out."""
    with ShardWriter(folder, len(tok), tokenizer_fingerprint(tok), shard_tokens) as writer:
        read: deque = deque()  # (split, rows) of the chunks handed to the workers, in order

        def chunks():
            for split, rows in stream:
                read.append(("train" if split == "train" else "eval", len(rows)))
                yield rows

        for ids in map_chunks(tokenize_chunk, chunks(), tok, num_proc):
            split, rows = read.popleft()
            writer.add(split, ids, rows)
        writer.add("eval", np.zeros(0, dtype=np.int32))  # an empty held-out split still has its (empty) file
        return writer.finish(source=stream.source, held_out_note=stream.held_out_note, **extra)


__all__ = ["tokenizer_fingerprint", "batch_ids", "tokenize_rows", "tokenize_chunk", "map_chunks", "write_corpus_shards"]
