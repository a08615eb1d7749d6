"""Rows of text from anywhere llmlab reads it: a local .txt/.jsonl/.csv/.parquet file or a hub dataset, streamed.

Shared by the kinds that train on text (pretraining, tokenizer training) and by `llmlab data preview`:
exactly the first N rows for training and held-out rows after them, or one UsageError saying what
is wrong with the file and how to fix it. `CorpusStream` reads them a chunk at a time (a corpus of
any size in a fixed amount of memory); `load_corpus` collects the same rows into lists.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from core.errors import UsageError
from core.hub import hub_reachable

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


CHUNK_ROWS = 4096  # rows per chunk when a corpus is streamed (tokenized a chunk at a time)


def _iter_local_rows(path: Path, limit: int, chunk: int) -> Iterator[list[str]]:
    """Up to `limit` rows of a local file, `chunk` at a time: lines of a .txt, or the `text` column of a table."""
    if not path.exists():
        raise UsageError(f"data file {path} does not exist; check the path")
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
            seen = 0
            with open(path, encoding="utf-8-sig") as fh:
                for line in fh:
                    line = line.rstrip("\r\n")
                    if line.strip():  # blank lines separate nothing in a one-row-per-line file
                        rows.append(line)
                        seen += 1
                        if seen >= limit:
                            break
                        if len(rows) >= chunk:
                            yield rows
                            rows = []
            if not seen:
                raise UsageError(f"data file {path} holds only blank lines")
            if rows:
                yield rows
            return
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(path)
            if "text" not in pf.schema_arrow.names:
                raise UsageError(f"{path.name} has no 'text' column (columns: {', '.join(pf.schema_arrow.names)})")
            seen = 0
            for batch in pf.iter_batches(columns=["text"], batch_size=min(limit, chunk, 65536)):
                rows = ["" if t is None else str(t) for t in batch.column(0).to_pylist()][:limit - seen]
                seen += len(rows)
                yield rows
                if seen >= limit:
                    break
            return
        import pandas as pd

        if suffix == ".csv":
            columns = pd.read_csv(path, nrows=0, dtype=str, encoding="utf-8-sig").columns
            if "text" not in columns:
                raise UsageError(f"{path.name} has no 'text' column (columns: {', '.join(map(str, columns))})")
            frames = pd.read_csv(path, nrows=limit, dtype=str, keep_default_na=False, encoding="utf-8-sig", chunksize=chunk)
        else:
            frames = pd.read_json(path, lines=True, nrows=limit, dtype=False, chunksize=chunk, encoding="utf-8-sig")
        with frames:
            for frame in frames:
                if "text" not in frame.columns:
                    raise UsageError(f"{path.name} has no 'text' column (columns: {', '.join(map(str, frame.columns))})")
                yield ["" if t is None else str(t) for t in frame["text"].tolist()]
    except UnicodeDecodeError:
        raise UsageError(f"{path.name} is not UTF-8 text; convert it (e.g. iconv -f GBK -t UTF-8) and retry") from None
    except UsageError:
        raise
    except Exception as exc:  # pandas/pyarrow parse errors carry long messages; keep the first line
        raise UsageError(f"cannot parse {path.name}: {str(exc).splitlines()[0]}") from None


def _iter_hub_rows(data: str, limit: int, chunk: int, found: dict) -> Iterator[list[str]]:
    """The first `limit` rows of a hub dataset, streamed (the full set is never downloaded); `found["source"]` says
    where they came from once they are read."""
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
            records = iter(open_stream().take(limit))
            first = next(records, None)
        except KeyError:
            raise UsageError(f"hub dataset {data!r} has no 'text' column") from None
        except Exception as exc:  # e.g. "Dataset scripts are no longer supported": try the next source
            last_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            continue
        try:
            rows = [] if first is None else [str(first["text"])]
            seen = len(rows)
            for record in records:
                rows.append(str(record["text"]))
                seen += 1
                if len(rows) >= chunk:
                    yield rows
                    rows = []
            if rows:
                yield rows
        except KeyError:
            raise UsageError(f"hub dataset {data!r} has no 'text' column") from None
        except UsageError:
            raise
        except Exception as exc:  # the stream broke off partway
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise UsageError(f"streaming {data!r} from the hub failed after {seen} rows: {text}") from None
        found["source"] = f"{label} (streamed, first {seen} rows)"
        return
    raise UsageError(f"cannot stream {data!r} from the hub: {last_error}")


class CorpusStream:
    """The rows `load_corpus` gives, read a chunk at a time, so a corpus of any size passes through a fixed amount of
    memory: iterating gives (split, rows) with split "train" or "held_out", every training row before any held-out
    row. Once it has run out, `source`, `held_out_note`, `n_train` and `n_held_out` say what load_corpus would.

    Exactly the first `rows` rows are for training and up to `eval_rows` after them held out. A file with nothing
    after its training rows holds out its own tail instead, so the last `eval_rows` training rows are kept back
    until the stream shows whether rows follow (a bounded buffer, never the corpus).
    """

    def __init__(self, data: str, rows: int, eval_rows: int, chunk_rows: int = CHUNK_ROWS) -> None:
        self.data, self.rows, self.eval_rows, self.chunk = data, rows, eval_rows, max(1, chunk_rows)
        self.source, self.held_out_note = "", ""
        self.n_train = self.n_held_out = 0

    def _raw(self) -> Iterator[list[str]]:
        wanted = self.rows + self.eval_rows
        if is_local(self.data):
            path = Path(self.data).expanduser()
            self.source = f"{path} (local file)"
            yield from _iter_local_rows(path, wanted, self.chunk)
            return
        found: dict = {}
        yield from _iter_hub_rows(self.data, wanted, self.chunk, found)
        self.source = found.get("source", self.data)

    def __iter__(self) -> Iterator[tuple[str, list[str]]]:
        kept_back: deque[str] = deque()  # the newest training rows, in case they become the held-out tail
        train: list[str] = []
        held: list[str] = []
        seen = 0
        for chunk in self._raw():
            for row in chunk:
                if seen < self.rows:
                    kept_back.append(row)
                    if len(kept_back) > self.eval_rows:
                        train.append(kept_back.popleft())
                else:
                    if kept_back:  # rows follow the training rows: the kept-back ones are training rows after all
                        train.extend(kept_back)
                        kept_back.clear()
                    held.append(row)
                seen += 1
            if train and (len(train) >= self.chunk or held):
                self.n_train += len(train)
                yield "train", train
                train = []
            if len(held) >= self.chunk:
                self.n_held_out += len(held)
                yield "held_out", held
                held = []
        tail = 0
        if not self.n_held_out and not held and self.eval_rows:
            # Nothing beyond the training rows: hold out the tail so eval loss still means something.
            total = seen
            tail = min(self.eval_rows, max(1, total // 10)) if total > 1 else 0
        while len(kept_back) > tail:
            train.append(kept_back.popleft())
        held = list(kept_back) + held
        self.n_train += len(train)
        if not self.n_train:
            raise UsageError(f"{self.data} has no rows to train on")
        if train:
            yield "train", train
        self.n_held_out += len(held)
        if held:
            yield "held_out", held
        if not self.eval_rows:
            self.held_out_note = "none (--eval-rows 0)"
        elif tail:
            self.held_out_note = (f"the file has only {seen} rows, so its last {tail} were held out "
                                  f"and training used the first {seen - tail}")
        else:
            self.held_out_note = f"the {self.n_held_out} rows after the first {self.rows}"


def load_corpus(data: str, rows: int, eval_rows: int) -> Corpus:
    """Exactly the first `rows` rows for training and up to `eval_rows` held-out rows after them, in memory."""
    stream = CorpusStream(data, rows, eval_rows)
    parts: dict[str, list[str]] = {"train": [], "held_out": []}
    for split, chunk in stream:
        parts[split].extend(chunk)
    return Corpus(train=parts["train"], held_out=parts["held_out"], source=stream.source,
                  held_out_note=stream.held_out_note)
