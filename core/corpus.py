"""Rows of text from anywhere llmlab reads it: a local .txt/.jsonl/.csv/.parquet file or a hub dataset, streamed.

Shared by the kinds that train on text (pretraining, tokenizer training) and by `llmlab data preview`:
exactly the first N rows for training and held-out rows after them, or one UsageError saying what
is wrong with the file and how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


def _read_local_rows(path: Path, limit: int) -> list[str]:
    """Up to `limit` rows of a local file: lines of a .txt, or the `text` column of a table."""
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
            with open(path, encoding="utf-8-sig") as fh:
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
            frame = pd.read_csv(path, nrows=limit, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        else:
            frame = pd.read_json(path, lines=True, nrows=limit, dtype=False, encoding="utf-8-sig")
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
