"""Reading rows, the first-`rows` cut, held-out rows, token caching and packing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core import corpus as corpus_source
from core.errors import UsageError
from core.lm.tokenizers import bundled_gpt2_tokenizer
from core.pretrain import data

ROWS = [f"row number {i} , said someone ." for i in range(30)]


def write_all_formats(tmp_path, rows):
    import pandas as pd

    paths = {}
    paths["txt"] = tmp_path / "rows.txt"
    paths["txt"].write_text("\n".join(rows) + "\n", encoding="utf-8")
    paths["jsonl"] = tmp_path / "rows.jsonl"
    paths["jsonl"].write_text("".join(json.dumps({"text": r, "id": i}) + "\n" for i, r in enumerate(rows)), encoding="utf-8")
    paths["csv"] = tmp_path / "rows.csv"
    pd.DataFrame({"id": range(len(rows)), "text": rows}).to_csv(paths["csv"], index=False)
    paths["parquet"] = tmp_path / "rows.parquet"
    pd.DataFrame({"text": rows}).to_parquet(paths["parquet"])
    return paths


@pytest.mark.parametrize("fmt", ["txt", "jsonl", "csv", "parquet"])
def test_every_format_gives_the_first_rows_then_the_held_out_rows(tmp_path, fmt):
    path = write_all_formats(tmp_path, ROWS)[fmt]
    corpus = corpus_source.load_corpus(str(path), rows=20, eval_rows=5)
    assert corpus.train == ROWS[:20]
    assert corpus.held_out == ROWS[20:25]
    assert "after the first 20" in corpus.held_out_note


def test_file_without_rows_beyond_the_cut_holds_out_its_tail_and_says_so(tmp_path):
    path = write_all_formats(tmp_path, ROWS)["txt"]
    corpus = corpus_source.load_corpus(str(path), rows=100, eval_rows=50)
    assert corpus.train + corpus.held_out == ROWS
    assert len(corpus.held_out) == 3  # a tenth of the file, at most eval_rows
    assert "held out" in corpus.held_out_note


def test_quoted_commas_and_newlines_in_csv_survive(tmp_path):
    rows = ['he said , "stop , now"', "two\nlines"]
    path = write_all_formats(tmp_path, rows)["csv"]
    assert corpus_source.load_corpus(str(path), rows=2, eval_rows=0).train == rows


@pytest.mark.parametrize(
    "content,suffix,message",
    [
        (None, ".txt", "does not exist"),
        ("", ".txt", "is empty"),
        ("\n\n  \n", ".txt", "only blank lines"),
        ("a,b\n1,2\n", ".csv", "no 'text' column"),
        ('{"body": "x"}\n', ".jsonl", "no 'text' column"),
        ("text\n", ".docx", "cannot read"),
    ],
)
def test_bad_files_raise_one_clear_usage_error(tmp_path, content, suffix, message):
    path = tmp_path / f"data{suffix}"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError, match=message):
        corpus_source.load_corpus(str(path), rows=10, eval_rows=0)


def test_gbk_text_file_is_reported_as_not_utf8(tmp_path):
    path = tmp_path / "zh.txt"
    path.write_bytes("你好，世界\n".encode("gbk"))
    with pytest.raises(UsageError, match="not UTF-8"):
        corpus_source.load_corpus(str(path), rows=10, eval_rows=0)


def test_hub_dataset_offline_points_at_demo_and_local_files():
    with pytest.raises(UsageError, match="--demo"):
        corpus_source.load_corpus("bookcorpus/bookcorpus", rows=10, eval_rows=0)


def test_tokenize_rows_appends_eos_to_every_row():
    tok = bundled_gpt2_tokenizer()
    ids = data.tokenize_rows(["Hello world", "Hello world"], tok)
    assert ids.tolist() == [15496, 995, 50256, 15496, 995, 50256]


def test_packing_keeps_every_token_and_masks_only_the_padding():
    ids = np.arange(1, 11, dtype=np.int32)  # 10 tokens, blocks of 4 -> 3 blocks, 2 padded slots
    inputs, labels = data.pack_blocks(ids, block_size=4, pad_id=0)
    assert inputs.shape == (3, 4)
    assert inputs.flatten()[:10].tolist() == list(range(1, 11))
    assert labels.flatten().tolist() == list(range(1, 11)) + [-100, -100]


def test_packing_exact_multiple_has_no_padding():
    inputs, labels = data.pack_blocks(np.arange(8, dtype=np.int32), block_size=4, pad_id=0)
    assert inputs.shape == (2, 4) and (labels != -100).all()


def test_packing_never_makes_a_block_with_nothing_to_predict():
    """A last block of one token has no target: its loss would be 0/0 = NaN (an eval loss of NaN)."""
    inputs, labels = data.pack_blocks(np.arange(1, 10, dtype=np.int32), block_size=4, pad_id=0)
    assert inputs.shape == (2, 4) and inputs.flatten().tolist() == list(range(1, 9))
    assert (labels[:, 1:] != -100).any(dim=1).all()
    inputs, labels = data.pack_blocks(np.zeros(0, dtype=np.int32), block_size=4, pad_id=0)
    assert inputs.shape == labels.shape == (0, 4)


def test_eval_loss_is_finite_when_the_last_batch_is_the_shortest_block():
    import contextlib

    from core.pretrain.config import PretrainConfig
    from core.pretrain.model import build_model
    from core.pretrain.train import evaluate_loss

    model = build_model(PretrainConfig(model_size="tiny"), vocab_size=50257)
    inputs, labels = data.pack_blocks(np.arange(1, 66, dtype=np.int32), block_size=32, pad_id=0)  # 2·32 + 1 tokens
    for batch_size in (1, 2, 3):
        assert np.isfinite(evaluate_loss(model, inputs, labels, batch_size, contextlib.nullcontext))


def test_token_cache_round_trip_and_key_changes_with_rows(tmp_path):
    tok = bundled_gpt2_tokenizer()
    path = write_all_formats(tmp_path, ROWS)["txt"]
    key = data.cache_key(str(path), 20, 5, tok)
    assert key != data.cache_key(str(path), 21, 5, tok)
    corpus = data.TokenizedCorpus(np.arange(5, dtype=np.int32), np.arange(2, dtype=np.int32), 20, 5, "src", "note")
    data.save_cached(data.token_cache_path(key), corpus)
    loaded = data.load_cached(data.token_cache_path(key))
    assert loaded.train_ids.tolist() == [0, 1, 2, 3, 4] and loaded.n_eval_rows == 5 and loaded.source == "src"
    # Editing the file changes its fingerprint, so stale ids are never reused.
    path.write_text("changed\n", encoding="utf-8")
    assert data.cache_key(str(path), 20, 5, tok) != key


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04cut short", b"not a zip at all"])
def test_a_damaged_token_cache_file_is_a_miss_not_a_crash(tmp_path, content):
    path = tmp_path / "tokens.npz"
    path.write_bytes(content)
    assert data.load_cached(path) is None


class _FakeStream:
    def __init__(self, rows):
        self.rows = rows

    def take(self, n):
        return [{"text": r} for r in self.rows[:n]]


def test_hub_streaming_falls_back_to_the_parquet_export(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(path, **kwargs):
        calls.append((path, kwargs.get("revision"), kwargs.get("data_files")))
        if len(calls) < 3:
            raise RuntimeError("Dataset scripts are no longer supported, but found bookcorpus.py")
        return _FakeStream([f"row {i}" for i in range(100)])

    monkeypatch.setattr(corpus_source, "hub_reachable", lambda: True)
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    corpus = corpus_source.load_corpus("bookcorpus/bookcorpus", rows=10, eval_rows=5)
    assert corpus.train == [f"row {i}" for i in range(10)] and corpus.held_out == [f"row {i}" for i in range(10, 15)]
    assert [c[1] for c in calls] == [None, "refs/convert/parquet", None]
    assert calls[2][0] == "parquet" and "refs%2Fconvert%2Fparquet" in calls[2][2]
    assert "Parquet files" in corpus.source and "first 15 rows" in corpus.source


def test_hub_streaming_that_fails_everywhere_is_one_usage_error(monkeypatch):
    import datasets

    def always_fails(path, **kwargs):
        raise RuntimeError("404 Client Error: not found\nmore detail")

    monkeypatch.setattr(corpus_source, "hub_reachable", lambda: True)
    monkeypatch.setattr(datasets, "load_dataset", always_fails)
    with pytest.raises(UsageError, match=r"cannot stream 'nobody/nothing' from the hub: 404 Client Error: not found$"):
        corpus_source.load_corpus("nobody/nothing", rows=10, eval_rows=0)
