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

from core.errors import UsageError
from core.hub import hub_reachable
from core.runs import cache_dir

LOCAL_SUFFIXES = {".txt", ".jsonl", ".json", ".csv", ".parquet"}


@dataclass
class Corpus:
    train: list[str]
    held_out: list[str]
    source: str            # where the rows came from, for the summary
    held_out_note: str     # how the held-out rows were chosen


def is_local(data: str) -> bool:
    path = Path(data).expanduser()
    return path.exists() or path.suffix.lower() in LOCAL_SUFFIXES or data.startswith((".", "/", "~"))


def _looks_binary(path: Path) -> bool:
    """A NUL byte in the first 8 KiB: text in UTF-8 or a legacy encoding such as GBK never holds one."""
    with open(path, "rb") as fh:
        head = fh.read(8192)
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise UsageError(f"{path.name} is UTF-16 text; convert it (e.g. iconv -f UTF-16 -t UTF-8) and retry")
    return b"\x00" in head


def _read_local_rows(path: Path, limit: int) -> list[str]:
    """Up to `limit` rows of a local file: lines of a .txt, or the `text` column of a table."""
    if not path.exists():
        raise UsageError(f"data file {path} does not exist; check the path or use --demo")
    if path.is_dir():
        raise UsageError(f"--data {path} is a folder; pass a .txt, .jsonl, .csv or .parquet file")
    if path.stat().st_size == 0:
        raise UsageError(f"data file {path} is empty; it needs at least one row of text")
    suffix = path.suffix.lower()
    if suffix not in LOCAL_SUFFIXES:
        raise UsageError(f"cannot read {path.name}: use a .txt (one row per line), .jsonl, .csv or .parquet file "
                         f"with a 'text' column")
    if suffix != ".parquet" and _looks_binary(path):
        raise UsageError(f"{path} looks like a binary file, not text; pass a .txt (one row per line), .jsonl, .csv "
                         f"or .parquet file")
    try:
        if suffix == ".txt":
            rows: list[str] = []
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    line = line.rstrip("\r\n")
                    if line.strip():  # blank lines separate nothing in a one-row-per-line file
                        rows.append(line)
                        if len(rows) >= limit:
                            break
            if not rows:
                raise UsageError(f"data file {path} holds only blank lines")
            return rows
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path)
            if "text" not in pf.schema_arrow.names:
                raise UsageError(f"{path.name} has no 'text' column (columns: {', '.join(pf.schema_arrow.names)})")
            rows = []
            for batch in pf.iter_batches(columns=["text"], batch_size=min(limit, 65536)):
                rows.extend("" if t is None else str(t) for t in batch.column(0).to_pylist())
                if len(rows) >= limit:
                    break
            return rows[:limit]
        import pandas as pd

        if suffix == ".csv":
            frame = pd.read_csv(path, nrows=limit, dtype=str, keep_default_na=False, encoding="utf-8")
        else:
            frame = pd.read_json(path, lines=True, nrows=limit, dtype=False)
    except UnicodeDecodeError:
        raise UsageError(f"{path.name} is not UTF-8 text; convert it (e.g. iconv -f GBK -t UTF-8) and retry") from None
    except UsageError:
        raise
    except Exception as exc:  # pandas/pyarrow parse errors carry long messages; keep the first line
        raise UsageError(f"cannot parse {path.name}: {str(exc).splitlines()[0]}") from None
    if "text" not in frame.columns:
        raise UsageError(f"{path.name} has no 'text' column (columns: {', '.join(map(str, frame.columns))})")
    return ["" if t is None else str(t) for t in frame["text"].tolist()]


def _stream_hub_rows(data: str, limit: int) -> tuple[list[str], str]:
    """The first `limit` rows of a hub dataset, streamed: the full set is never downloaded."""
    if not hub_reachable():
        raise UsageError(f"cannot reach the Hugging Face Hub to stream {data!r}; "
                         f"run 'llmlab pretrain --demo' (bundled sample) or pass --data FILE")
    from datasets import load_dataset

    # 1. the dataset as published; 2. the hub's own Parquet export (datasets >= 4 refuses the
    # loading script bookcorpus still had); 3. that export's files by pattern, because very large
    # sets are only partly exported, into a `partial-train` folder that is not the `train` split.
    export_files = f"hf://datasets/{data}@refs%2Fconvert%2Fparquet/*/*train/*.parquet"
    attempts = [
        (lambda: load_dataset(data, split="train", streaming=True), data),
        (lambda: load_dataset(data, split="train", streaming=True, revision="refs/convert/parquet"),
         f"{data}@refs/convert/parquet"),
        (lambda: load_dataset("parquet", data_files=export_files, split="train", streaming=True),
         f"{data}@refs/convert/parquet (Parquet files)"),
    ]
    last_error = ""
    for open_stream, label in attempts:
        try:
            rows = [str(r["text"]) for r in open_stream().take(limit)]
            return rows, f"{label} (streamed, first {len(rows)} rows)"
        except KeyError:
            raise UsageError(f"hub dataset {data!r} has no 'text' column") from None
        except Exception as exc:  # e.g. "Dataset scripts are no longer supported": try the next source
            last_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    raise UsageError(f"cannot stream {data!r} from the hub: {last_error}")


def load_corpus(data: str, rows: int, eval_rows: int) -> Corpus:
    """Exactly the first `rows` rows for training and up to `eval_rows` held-out rows after them."""
    wanted = rows + eval_rows
    if is_local(data):
        path = Path(data).expanduser()
        all_rows = _read_local_rows(path, wanted)
        source = f"{path} (local file)"
    else:
        all_rows, source = _stream_hub_rows(data, wanted)
    train, held_out = all_rows[:rows], all_rows[rows:]
    note = f"the {len(held_out)} rows after the first {rows}"
    if eval_rows and not held_out:
        # Nothing beyond the training rows: hold out the tail so eval loss still means something.
        n_hold = min(eval_rows, max(1, len(train) // 10)) if len(train) > 1 else 0
        if n_hold:
            train, held_out = train[:-n_hold], train[-n_hold:]
            note = (f"the file has only {len(all_rows)} rows, so its last {n_hold} were held out "
                    f"and training used the first {len(train)}")
    if not train:
        raise UsageError(f"{data} has no rows to train on")
    if eval_rows == 0:
        note = "none (--eval-rows 0)"
    return Corpus(train=train, held_out=held_out, source=source, held_out_note=note)


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
