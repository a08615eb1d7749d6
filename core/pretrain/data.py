"""Training text in, packed token blocks out.

Three speed-ups live here: rows are tokenized once (in `--num-proc` processes) into memory-mapped
token shards that are the on-disk cache (keyed by data, rows and tokenizer; core/shards.py), and
tokens are packed into full blocks so no compute is spent on padding (BookCorpus rows are ~17
tokens; padding each row would waste most of every batch). A corpus of up to RESIDENT_MAX_TOKENS
training tokens is packed in memory (and trained on from the device); a larger one is read block by
block from the memory map (`MappedBlocks`), so memory does not grow with the corpus.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import UsageError
from core.runs import cache_dir
from core.shards import INDEX, ShardError, ShardWriter, open_shards
from core.train.tokens import tokenize_rows, tokenizer_fingerprint, write_corpus_shards  # noqa: F401 (this module's API)

# Up to this many training tokens the blocks are packed in memory and kept on the device (inputs and labels as int64:
# 256 MiB); beyond it they are read from the memory-mapped shards a batch at a time.
RESIDENT_MAX_TOKENS = 16_000_000
# When the cache cannot be written (a full disk), text files up to this size are tokenized in memory instead; a
# larger corpus is refused in one line, since it may not fit in memory.
IN_MEMORY_FALLBACK_BYTES = 64 * 2**20

# ---------------------------------------------------------------------------------------------
# Token cache


def data_fingerprint(data: str) -> str:
    """Identifies the data without reading it: path + size + mtime for files, the id for the hub."""
    path = Path(data).expanduser()
    if path.is_file():
        st = path.stat()
        return f"file:{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    return f"hub:{data}"


# Bump when tokenize_rows or the cache's layout changes, so old files are not read as new ones.
TOKEN_CACHE_VERSION = 2


def cache_key(data: str, rows: int, eval_rows: int, tok) -> str:
    raw = json.dumps([data_fingerprint(data), rows, eval_rows, tokenizer_fingerprint(tok), TOKEN_CACHE_VERSION])
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


@dataclass
class TokenizedCorpus:
    train_ids: np.ndarray      # every training row's ids with EOS appended, concatenated (or a memory-mapped TokenStream)
    eval_ids: np.ndarray
    n_train_rows: int
    n_eval_rows: int
    source: str
    held_out_note: str


def _from_shards(shards) -> TokenizedCorpus:
    index = shards.index
    return TokenizedCorpus(shards["train"], shards["eval"], shards.rows("train"), shards.rows("eval"),
                           index.get("source", ""), index.get("held_out_note", ""))


def save_cached(path: Path, corpus: TokenizedCorpus, vocab_size: int = 2**16, fingerprint: str = "") -> None:
    """Token ids already in memory, written as a token shard folder at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with ShardWriter(path, vocab_size, fingerprint) as writer:
        writer.add("train", np.asarray(corpus.train_ids), corpus.n_train_rows)
        writer.add("eval", np.asarray(corpus.eval_ids), corpus.n_eval_rows)
        writer.finish(source=corpus.source, held_out_note=corpus.held_out_note)


def open_cached(path: Path) -> tuple[TokenizedCorpus | None, str | None]:
    """(the cached ids, memory-mapped, or None; why a cache that is there cannot be used, or None)."""
    if not path.exists():
        return None, None
    try:
        return _from_shards(open_shards(path)), None
    except ShardError as exc:
        return None, str(exc)


def load_cached(path: Path) -> TokenizedCorpus | None:
    """The cached ids, or None when the folder is missing or damaged (then the rows are tokenized again)."""
    return open_cached(path)[0]


def write_cache(path: Path, stream, tok, num_proc: int = 1) -> TokenizedCorpus:
    """Stream the rows through the tokenizer into the cache at `path`, then open it (memory-mapped)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return _from_shards(open_shards(write_corpus_shards(path, stream, tok, num_proc), verify=False))


def token_cache_path(key: str) -> Path:
    return cache_dir() / "tokens" / key


def is_shard_folder(data: str) -> bool:
    """--data names a token shard folder (tokenized once, by an earlier run or another machine)."""
    path = Path(data).expanduser()
    return path.is_dir() and (path / INDEX).is_file()


def load_tokens(cfg, tok, notes: list[str], phases: dict, corpus=None) -> tuple[TokenizedCorpus, str]:
    """(token ids, cache state: hit | written | failed | off | given); `corpus` when the rows are already read.

    With the cache on, the rows are streamed through the tokenizer (in --num-proc processes) straight into
    memory-mapped token shards, so no step holds the corpus in memory; a damaged cache is tokenized again.
    A token shard folder given as --data is used as it is, and refused if damaged.
    """
    from core.corpus import CorpusStream, load_corpus

    t = time.perf_counter()
    if is_shard_folder(cfg.data):
        try:
            shards = open_shards(Path(cfg.data).expanduser(), tokenizer_fingerprint(tok))
        except ShardError as exc:
            raise UsageError(f"--data {cfg.data}: {exc}; tokenize the text again (its cache folder is rebuilt when "
                             f"damaged) or pass the text file") from None
        phases["data"], phases["tokenize"] = 0.0, time.perf_counter() - t
        notes.append(f"token shards given as --data: {cfg.data} (their rows, not --rows)")
        return _from_shards(shards), "given"
    key = cache_key(cfg.data, cfg.rows, cfg.eval_rows, tok)
    path = token_cache_path(key)
    failed = False
    if cfg.token_cache:
        cached, problem = open_cached(path)
        if cached is not None:
            phases.setdefault("data", 0.0)
            phases["tokenize"] = time.perf_counter() - t
            notes.append(f"token cache hit: {path}")
            return cached, "hit"
        if problem:
            notes.append(f"the token cache {path} is damaged ({problem}); tokenizing again")
        if corpus is None:
            try:
                tokens = write_cache(path, CorpusStream(cfg.data, cfg.rows, cfg.eval_rows), tok, cfg.num_proc)
                phases.setdefault("data", 0.0)  # read while tokenizing: one phase
                phases["tokenize"] = time.perf_counter() - t
                notes.append(f"token shards written: {path}")
                return tokens, "written"
            except OSError as exc:  # a full disk: the writer left no half-written shard behind
                _check_fallback(cfg, path, exc)
                notes.append(f"could not write the token cache ({exc.strerror}); continuing without it")
                failed, t = True, time.perf_counter()
    if corpus is None:
        corpus = load_corpus(cfg.data, cfg.rows, cfg.eval_rows)
        phases["data"] = time.perf_counter() - t
    t = time.perf_counter()
    tokens = TokenizedCorpus(
        train_ids=_tokenize(corpus.train, tok, cfg.num_proc), eval_ids=_tokenize(corpus.held_out, tok, cfg.num_proc),
        n_train_rows=len(corpus.train), n_eval_rows=len(corpus.held_out),
        source=corpus.source, held_out_note=corpus.held_out_note)
    state = "failed" if failed else "off"
    if cfg.token_cache and not failed:  # the rows were read already (a tokenizer was trained on them)
        try:
            save_cached(path, tokens, len(tok), tokenizer_fingerprint(tok))
            state = "written"
        except OSError as exc:
            notes.append(f"could not write the token cache ({exc.strerror}); continuing without it")
            state = "failed"
    phases["tokenize"] = time.perf_counter() - t
    return tokens, state


def _check_fallback(cfg, path: Path, exc: OSError) -> None:
    """A corpus too large to tokenize in memory is refused when its shards cannot be written."""
    source = Path(cfg.data).expanduser()
    size = source.stat().st_size if source.is_file() else None
    if size is not None and size <= IN_MEMORY_FALLBACK_BYTES:
        return
    what = f"{size / 2**30:.1f} GB of text" if size else f"{cfg.rows:,} hub rows"
    raise UsageError(f"could not write the token shards to {path.parent} ({exc.strerror or exc}); nothing half-written "
                     f"was kept. {what} is too much to tokenize in memory instead: free some space there (the ids take "
                     f"about half the text's size) or set LLMLAB_CACHE_DIR to a disk with room") from None


def _tokenize(rows: list[str], tok, num_proc: int) -> np.ndarray:
    """Rows already in memory, tokenized in chunks over `num_proc` processes, as one array."""
    from core.corpus import CHUNK_ROWS
    from core.train.tokens import map_chunks, tokenize_chunk

    if num_proc <= 1 or len(rows) <= CHUNK_ROWS:
        return tokenize_rows(rows, tok)
    chunks = (rows[i:i + CHUNK_ROWS] for i in range(0, len(rows), CHUNK_ROWS))
    return np.concatenate(list(map_chunks(tokenize_chunk, chunks, tok, num_proc)))


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


class MappedBlocks:
    """pack_blocks' blocks of a corpus too large to pack in memory, read from its memory-mapped ids when a batch
    needs them: the same inputs and labels, block for block (tested), at a fixed memory cost.

    Index `n_blocks` is the all-masked filler block that fills short batches under compile.
    """

    def __init__(self, ids, block_size: int, pad_id: int) -> None:
        n = len(ids)
        if n % block_size == 1:  # as pack_blocks: a last block of one token has nothing to predict
            n -= 1
        self.ids, self.n_tokens, self.block_size, self.pad_id = ids, n, block_size, pad_id
        self.n_blocks = -(-n // block_size)

    def take(self, blocks) -> tuple[np.ndarray, np.ndarray]:
        """(inputs, labels) of these block indices, int64 arrays of shape (len(blocks), block_size)."""
        size = self.block_size
        inputs = np.full((len(blocks), size), self.pad_id, dtype=np.int64)
        labels = np.full((len(blocks), size), -100, dtype=np.int64)
        for row, b in enumerate(np.asarray(blocks).tolist()):
            if b >= self.n_blocks:
                continue  # the filler block
            piece = self.ids[b * size:min((b + 1) * size, self.n_tokens)]
            inputs[row, :len(piece)] = piece
            labels[row, :len(piece)] = piece
        return inputs, labels

    def valid(self, blocks) -> np.ndarray:
        """Predicted tokens per block (a block's first token is no target): what (labels[:, 1:] != -100).sum(1) gives."""
        blocks = np.asarray(blocks, dtype=np.int64)
        real = np.clip(self.n_tokens - blocks * self.block_size, 0, self.block_size)
        return np.where(blocks < self.n_blocks, np.maximum(real - 1, 0), 0)


def count_blocks(blocks) -> int:
    """The training blocks of packed (inputs, labels) or of MappedBlocks."""
    return blocks.n_blocks if isinstance(blocks, MappedBlocks) else int(blocks[0].shape[0])
