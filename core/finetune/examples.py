"""Fine-tuning examples tokenized once, in `--num-proc` processes, into token shards, and read one at a time.

Seed 003 offers 800,000 training rows. As Python lists of ints their ids would take gigabytes, so
they go the way pretraining's corpus goes (core/shards.py, core/train/tokens.py): every example's
ids, prompt and target, one after another in a token shard folder in the cache, with two small
arrays beside them (where each example starts, how long its prompt is). `ExampleSet` reads an
example when a batch needs it. The folder is keyed by the tokenizer, --max-length and the
examples' text, so a second run (or the other ranks) reads it instead of tokenizing again.

The examples' text itself (the split rows: prompts, targets, gold letters) stays in memory: it is a
small fraction of the ids' size, and the splits and data/*.jsonl are built from it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.finetune.train import Example, encode
from core.runs import cache_dir
from core.shards import ShardError, ShardWriter, open_shards
from core.train.tokens import map_chunks, tokenizer_fingerprint

EXAMPLES_VERSION = 1
CHUNK_EXAMPLES = 2048


class ExampleSet(Sequence):
    """Examples read lazily from a token shard folder: `len()`, `[i]` (an Example), `[a:b:c]` (a list)."""

    def __init__(self, shards) -> None:
        self.ids = shards["examples"]
        self.starts = shards.arrays["starts"]          # n + 1 offsets into the ids
        self.prompt_lengths = shards.arrays["prompt_lengths"]

    def __len__(self) -> int:
        return len(self.prompt_lengths)

    def __getitem__(self, key):
        if isinstance(key, slice):
            return [self[i] for i in range(*key.indices(len(self)))]
        i = int(key) + (len(self) if int(key) < 0 else 0)
        if not 0 <= i < len(self):
            raise IndexError(key)
        ids = self.ids.read(int(self.starts[i]), int(self.starts[i + 1])).tolist()
        prompt = int(self.prompt_lengths[i])
        return Example(ids, [-100] * prompt + ids[prompt:])


def encode_chunk(shared, rows: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(every example's ids, one after another; each one's length; each one's prompt length; how many were cut)."""
    tokenizer, max_length, chat = shared
    examples, cut = encode(tokenizer, rows, max_length, chat)
    lengths = np.array([len(e.input_ids) for e in examples], dtype=np.int64)
    prompts = np.array([sum(1 for x in e.labels if x == -100) for e in examples], dtype=np.int32)
    ids = np.fromiter((t for e in examples for t in e.input_ids), dtype=np.int64, count=int(lengths.sum()))
    return ids, lengths, prompts, cut


def examples_key(tokenizer, rows: list[dict], max_length: int, chat: bool = False) -> str:
    h = hashlib.sha256(json.dumps([tokenizer_fingerprint(tokenizer), max_length, EXAMPLES_VERSION, chat]).encode())
    for row in rows:  # (with --template chat, `prompt` is the user turn rendered by the template: a new template, a new key)
        h.update(json.dumps([row["prompt"], row["target"]], ensure_ascii=False).encode("utf-8"))
    return h.hexdigest()[:24]


def examples_path(key: str) -> Path:
    return cache_dir() / "examples" / key


def encoded_examples(tokenizer, rows: list[dict], max_length: int, num_proc: int = 1,
                     notes: list[str] | None = None, chat: bool = False) -> tuple[Sequence, int]:
    """(the examples of `rows`, how many lost the start of their prompt): read from the cache, or tokenized into it
    (in `num_proc` processes); `chat`: rows are user/assistant turns of the chat template (core/lm/chat.py).
    A damaged cache is tokenized again; one that cannot be written (a full disk) gives
    the examples in memory, as before there was a cache, with a line in `notes`."""
    notes = notes if notes is not None else []
    if not rows:
        return [], 0
    path = examples_path(examples_key(tokenizer, rows, max_length, chat))
    if path.exists():
        try:
            shards = open_shards(path, tokenizer_fingerprint(tokenizer))
            return ExampleSet(shards), int(shards.index.get("cut", 0))
        except ShardError as exc:
            notes.append(f"the example cache {path} is damaged ({exc}); tokenizing again")
    chunks = (rows[i:i + CHUNK_EXAMPLES] for i in range(0, len(rows), CHUNK_EXAMPLES))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with ShardWriter(path, len(tokenizer), tokenizer_fingerprint(tokenizer)) as writer:
            lengths, prompts, cut = [], [], 0
            for ids, n, p, c in map_chunks(encode_chunk, chunks, (tokenizer, max_length, chat), num_proc):
                writer.add("examples", ids, len(n))
                lengths.append(n)
                prompts.append(p)
                cut += c
            writer.add_array("starts", np.concatenate([[0], np.cumsum(np.concatenate(lengths))]).astype(np.int64))
            writer.add_array("prompt_lengths", np.concatenate(prompts).astype(np.int32))
            writer.finish(cut=cut, examples=len(rows), max_length=max_length)
        return ExampleSet(open_shards(path, verify=False)), cut
    except OSError as exc:
        notes.append(f"could not write the example cache ({exc.strerror}); the examples stay in memory")
        return encode(tokenizer, rows, max_length, chat)


__all__ = ["ExampleSet", "encoded_examples", "examples_key", "examples_path", "encode_chunk"]
