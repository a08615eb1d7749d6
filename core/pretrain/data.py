"""Training text in, packed token blocks out.

Three speed-ups live here: rows are tokenized once in a batch and cached on disk (keyed by
data, rows and tokenizer), and tokens are packed into full blocks so no compute is spent on
padding (BookCorpus rows are ~17 tokens; padding each row would waste most of every batch).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.runs import cache_dir

# ---------------------------------------------------------------------------------------------
# Token cache


def data_fingerprint(data: str) -> str:
    """Identifies the data without reading it: path + size + mtime for files, the id for the hub."""
    path = Path(data).expanduser()
    if path.is_file():
        st = path.stat()
        return f"file:{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    return f"hub:{data}"


def tokenizer_fingerprint(tok) -> str:
    sample = tok("Hello world, 你好 <|endoftext|>", add_special_tokens=False)["input_ids"]
    return f"{type(tok).__name__}:{len(tok)}:{tok.eos_token_id}:{sample}"


# Bump when tokenize_rows or the cache file's layout changes, so old files are not read as new ones.
TOKEN_CACHE_VERSION = 1


def cache_key(data: str, rows: int, eval_rows: int, tok) -> str:
    raw = json.dumps([data_fingerprint(data), rows, eval_rows, tokenizer_fingerprint(tok), TOKEN_CACHE_VERSION])
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


@dataclass
class TokenizedCorpus:
    train_ids: np.ndarray      # every training row's ids with EOS appended, concatenated
    eval_ids: np.ndarray
    n_train_rows: int
    n_eval_rows: int
    source: str
    held_out_note: str


def tokenize_rows(texts: list[str], tok) -> np.ndarray:
    """One batched call of the fast (Rust) tokenizer; EOS closes every row."""
    if not texts:
        return np.zeros(0, dtype=np.int32)
    ids = tok(texts, add_special_tokens=False, verbose=False)["input_ids"]
    eos = tok.eos_token_id
    return np.fromiter((t for row in ids for t in (*row, eos)), dtype=np.int32)


def save_cached(path: Path, corpus: TokenizedCorpus) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    meta = json.dumps({"n_train_rows": corpus.n_train_rows, "n_eval_rows": corpus.n_eval_rows,
                       "source": corpus.source, "held_out_note": corpus.held_out_note})
    np.savez(tmp, train_ids=corpus.train_ids, eval_ids=corpus.eval_ids, meta=np.array(meta))
    os.replace(tmp, path)


def load_cached(path: Path) -> TokenizedCorpus | None:
    """The cached ids, or None when the file is missing or damaged (then the rows are tokenized again)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            return TokenizedCorpus(npz["train_ids"], npz["eval_ids"], meta["n_train_rows"], meta["n_eval_rows"],
                                   meta["source"], meta["held_out_note"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # empty or cut short by a crash
        return None


def token_cache_path(key: str) -> Path:
    return cache_dir() / "tokens" / f"{key}.npz"


# ---------------------------------------------------------------------------------------------
# Packing


def pack_blocks(ids: np.ndarray, block_size: int, pad_id: int):
    """(inputs, labels) of shape (n_blocks, block_size): only the last block padded; no ids, no blocks.

    The padding sits at the end of the last block, so causal attention never lets a real token
    see it, and its labels are -100 so it is left out of the loss.
    A block's first token is never a target, so a last block holding a single token would have
    nothing to predict: its mean loss is 0/0 = NaN, which poisons an eval batch or skips a
    training step. That one token (the closing EOS) is dropped instead.
    """
    import torch

    n = len(ids)
    if n % block_size == 1:
        n -= 1
    n_blocks = -(-n // block_size)
    inputs = np.full(n_blocks * block_size, pad_id, dtype=np.int64)
    inputs[:n] = ids[:n]
    labels = inputs.copy()
    labels[n:] = -100
    return (torch.from_numpy(inputs).view(n_blocks, block_size),
            torch.from_numpy(labels).view(n_blocks, block_size))
