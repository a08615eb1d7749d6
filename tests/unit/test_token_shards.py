"""Corpora larger than memory: rows streamed in chunks, tokenized (in several processes) into memory-mapped token
shards that are checked before use, blocks read from the map equal to packed ones, and fine-tuning examples read
lazily from the same kind of folder."""

from __future__ import annotations

import errno
import json

import numpy as np
import pytest
import torch

from core import shards as shard_mod
from core.cli import main
from core.corpus import CorpusStream, load_corpus
from core.errors import UsageError
from core.lm.tokenizers import bundled_gpt2_tokenizer
from core.pretrain import data
from core.pretrain.config import PretrainConfig
from core.pretrain.run import run_pretrain
from core.runs import iter_jsonl, read_json
from core.shards import ShardError, ShardWriter, open_shards
from core.synthetic import bookcorpus_like_rows
from core.train.tokens import tokenize_rows, tokenizer_fingerprint, write_corpus_shards

ROWS = bookcorpus_like_rows(300, seed=5)


@pytest.fixture(scope="module")
def tok():
    return bundled_gpt2_tokenizer()


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(ROWS) + "\n", encoding="utf-8")
    return path


def quiet(_msg: str) -> None:
    pass


@pytest.mark.parametrize("rows,eval_rows", [(200, 30), (290, 40), (1000, 50), (100, 0)])
@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_streamed_rows_are_exactly_the_rows_load_corpus_gives(corpus, rows, eval_rows, chunk):
    """(290, 40) runs out inside the held-out rows; (1000, 50) has nothing after them and holds out its tail."""
    whole = load_corpus(str(corpus), rows, eval_rows)
    stream = CorpusStream(str(corpus), rows, eval_rows, chunk_rows=chunk)
    parts = {"train": [], "held_out": []}
    order = []
    for split, chunk_rows in stream:
        assert 0 < len(chunk_rows) and (chunk == 4096 or len(chunk_rows) <= chunk + eval_rows)
        parts[split].extend(chunk_rows)
        order.append(split)
    assert parts["train"] == whole.train and parts["held_out"] == whole.held_out
    assert order == sorted(order, key=lambda s: s != "train")  # every training row before any held-out row
    assert (stream.n_train, stream.n_held_out) == (len(whole.train), len(whole.held_out))
    assert stream.held_out_note == whole.held_out_note and stream.source == whole.source


@pytest.mark.parametrize("num_proc", [1, 2])
def test_shards_hold_exactly_the_tokenized_rows_across_files(corpus, tok, tmp_path, num_proc):
    folder = tmp_path / "shards"
    stream = CorpusStream(str(corpus), 250, 30, chunk_rows=16)
    write_corpus_shards(folder, stream, tok, num_proc=num_proc, shard_tokens=997)  # several files per split
    opened = open_shards(folder, tokenizer_fingerprint(tok))
    whole = load_corpus(str(corpus), 250, 30)
    expected_train, expected_eval = tokenize_rows(whole.train, tok), tokenize_rows(whole.held_out, tok)
    assert len(opened.index["splits"]["train"]["shards"]) == -(-len(expected_train) // 997) > 2
    assert opened["train"].dtype == np.uint16  # GPT-2's 50,257 ids fit
    assert np.array_equal(np.asarray(opened["train"]), expected_train)
    assert np.array_equal(np.asarray(opened["eval"]), expected_eval)
    assert (opened.rows("train"), opened.rows("eval")) == (250, 30)
    assert np.array_equal(opened["train"][990:1010], expected_train[990:1010])  # a read across two files
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_memmap_blocks_equal_packed_blocks_for_the_same_ids(tmp_path):
    for n in (0, 1, 63, 64, 65, 129, 1000):  # 65 and 129: a last block of one token is dropped, as pack_blocks does
        ids = np.arange(1, n + 1, dtype=np.int32) % 50_000
        with ShardWriter(tmp_path / f"s{n}", 50_257, "fp", shard_tokens=100) as writer:
            writer.add("train", ids, 1)
            writer.finish()
        stream = open_shards(tmp_path / f"s{n}")["train"]
        inputs, labels = data.pack_blocks(ids, 64, pad_id=7)
        mapped = data.MappedBlocks(stream, 64, pad_id=7)
        assert mapped.n_blocks == inputs.shape[0] == data.count_blocks((inputs, labels))
        every = np.random.default_rng(n).permutation(mapped.n_blocks)
        got_inputs, got_labels = mapped.take(every)
        assert np.array_equal(got_inputs, inputs[every].numpy()) and np.array_equal(got_labels, labels[every].numpy())
        assert np.array_equal(mapped.valid(every), (labels[every][:, 1:] != -100).sum(dim=1).numpy())
        filler_inputs, filler_labels = mapped.take([mapped.n_blocks])  # compile's all-masked filler block
        assert (filler_labels == -100).all() and mapped.valid([mapped.n_blocks]).tolist() == [0]


def write_small(folder, n=5000):
    with ShardWriter(folder, 50_257, "fp", shard_tokens=2000) as writer:
        writer.add("train", np.arange(n) % 50_000, 10)
        return writer.finish()


@pytest.mark.parametrize("damage, words", [
    ("truncate", "is 4,024 bytes but its index says 5,024"),
    ("flip", "fails its checksum"),
    ("header", "does not start with an llmlab token shard header"),
    ("swap", "header does not match its index"),
    ("missing", "is missing from"),
    ("index", "is unreadable"),
])
def test_a_damaged_shard_is_refused_never_read(tmp_path, damage, words):
    folder = write_small(tmp_path / "shards")
    target = folder / "train-00001.bin"
    raw = bytearray(target.read_bytes())
    if damage == "truncate":
        target.write_bytes(raw[:-1000])
    elif damage == "flip":
        raw[shard_mod.HEADER_BYTES + 123] ^= 0xFF
        target.write_bytes(raw)
    elif damage == "header":
        target.write_bytes(b"\0" * 8 + raw[8:])
    elif damage == "swap":
        target.write_bytes((folder / "train-00000.bin").read_bytes())
    elif damage == "missing":
        target.unlink()
    else:
        (folder / "index.json").write_text('{"format": "llmlab-tok', encoding="utf-8")
    with pytest.raises(ShardError, match=words):
        open_shards(folder)


def test_a_full_disk_while_writing_leaves_no_shard_folder(tmp_path, monkeypatch):
    writes = []

    def full(self, ids):
        writes.append(len(ids))
        if len(writes) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, ids)

    real_write = shard_mod._ShardFile.write
    monkeypatch.setattr(shard_mod._ShardFile, "write", full)
    with pytest.raises(OSError):
        write_small(tmp_path / "shards")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its temporary copy


def test_a_damaged_token_cache_is_tokenized_again_and_a_damaged_given_folder_refused(corpus, tmp_path, capsys):
    cfg = dict(data=str(corpus), rows=200, eval_rows=30, epochs=1, tokenizer="gpt2-bundled", model_size="tiny",
               block_size=32, batch_size=8, sample_tokens=0, max_steps=2)
    first = run_pretrain(PretrainConfig(**cfg, out=str(tmp_path / "a")), log=quiet)
    assert first["token_cache"] == "written"
    cache = data.token_cache_path(data.cache_key(str(corpus), 200, 30, bundled_gpt2_tokenizer()))
    shard = cache / "train-00000.bin"
    raw = bytearray(shard.read_bytes())
    raw[-3] ^= 0x55
    shard.write_bytes(raw)
    again = run_pretrain(PretrainConfig(**cfg, out=str(tmp_path / "b")), log=quiet)
    assert again["token_cache"] == "written" and again["final_loss"] == pytest.approx(first["final_loss"], abs=1e-5)
    logs = [e["message"] for e in iter_jsonl(tmp_path / "b" / "events.jsonl") if e["type"] == "log"]
    assert any("is damaged (train-00000.bin fails its checksum" in m and "tokenizing again" in m for m in logs)

    given = run_pretrain(PretrainConfig(**{**cfg, "data": str(cache)}, out=str(tmp_path / "c")), log=quiet)
    assert given["token_cache"] == "given" and given["final_loss"] == pytest.approx(first["final_loss"], abs=1e-5)
    shard.write_bytes(shard.read_bytes()[:-2])  # cut short
    code = main(["pretrain", "--data", str(cache), "--tokenizer", "gpt2-bundled", "--model-size", "tiny",
                 "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("llmlab: error:") == 1 and "Traceback" not in err
    assert f"--data {cache}: train-00000.bin is" in err and "cut short or overwritten" in err
    assert not (tmp_path / "d").exists()


def test_a_full_disk_refuses_a_corpus_too_large_for_memory_in_one_line(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "IN_MEMORY_FALLBACK_BYTES", 100)  # this corpus counts as large
    monkeypatch.setattr(shard_mod._ShardFile, "write", lambda self, ids: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
    code = main(["pretrain", "--data", str(corpus), "--tokenizer", "gpt2-bundled", "--model-size", "tiny",
                 "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("llmlab: error:") == 1 and "Traceback" not in err
    assert "could not write the token shards" in err and "nothing half-written was kept" in err
    assert not (tmp_path / "run").exists() and not list((tmp_path / "cache" / "tokens").iterdir())


def test_a_corpus_read_from_the_memory_map_trains_like_one_packed_in_memory_and_resumes_exactly(corpus, tmp_path,
                                                                                                 monkeypatch):
    import signal

    from core.signals import StopRequest

    cfg = dict(data=str(corpus), rows=250, eval_rows=30, epochs=2, tokenizer="gpt2-bundled", model_size="tiny",
               block_size=32, batch_size=8, dropout=0.0, sample_tokens=0, log_every=1, save_minutes=0)
    resident = run_pretrain(PretrainConfig(**cfg, out=str(tmp_path / "resident")), log=quiet)
    monkeypatch.setattr(data, "RESIDENT_MAX_TOKENS", 0)
    mapped = run_pretrain(PretrainConfig(**cfg, out=str(tmp_path / "mapped")), log=quiet)
    assert any("memory-mapped token shards" in o for o in mapped["optimizations"])
    assert not any("memory-mapped" in o for o in resident["optimizations"])

    def curve(name):
        return [(e["step"], e["loss"]) for e in iter_jsonl(tmp_path / name / "events.jsonl") if e["type"] == "loss"]

    assert curve("resident") == curve("mapped") and mapped["eval_loss"] == resident["eval_loss"]
    # stopped inside an epoch and resumed: the order comes back from the RNG state it was drawn from
    stop = StopRequest()

    def at_step(step, total):
        if step == total // 2 + 3:  # past the first epoch's end, inside the second
            stop.signal = signal.SIGINT

    run_pretrain(PretrainConfig(**cfg, out=str(tmp_path / "part")), log=quiet, stop=stop, on_step=at_step)
    state = read_json(next((tmp_path / "part" / "checkpoints").iterdir()) / "state.json")
    assert state["order"] == [] and state["next_index"] == 3 and state["epoch"] == 2
    assert main(["pretrain", "--resume", str(tmp_path / "part")]) == 0
    assert curve("part") == curve("mapped")
    assert read_json(tmp_path / "part" / "summary.json")["final_loss"] == mapped["final_loss"]


def test_fine_tuning_examples_are_tokenized_in_processes_and_read_lazily(tok, tmp_path):
    from core.finetune.examples import ExampleSet, encoded_examples
    from core.finetune.train import encode

    rows = [{"prompt": f"Question {i}: {r}\nAnswer:", "target": f" option {i % 4}"} for i, r in
            enumerate(bookcorpus_like_rows(5000, seed=9))]
    notes: list[str] = []
    examples, cut = encoded_examples(tok, rows, 24, num_proc=2, notes=notes)
    expected, expected_cut = encode(tok, rows, 24)
    assert isinstance(examples, ExampleSet) and len(examples) == len(rows) and cut == expected_cut > 0 and not notes
    for i in (0, 1, 2047, 2048, 4999, -1):
        assert examples[i] == expected[i]
    assert examples[3:9:2] == expected[3:9:2]
    again, _ = encoded_examples(tok, rows, 24)  # the second time: read from the cache, not tokenized
    assert again.ids.maps[0].filename == examples.ids.maps[0].filename and again[17] == expected[17]
    with pytest.raises(IndexError):
        examples[len(rows)]


def test_shard_index_records_tokenizer_rows_and_checksums(corpus, tok, tmp_path):
    folder = write_corpus_shards(tmp_path / "s", CorpusStream(str(corpus), 100, 10), tok)
    index = json.loads((folder / "index.json").read_text())
    assert index["tokenizer"] == tokenizer_fingerprint(tok) and index["dtype"] == "uint16"
    assert index["splits"]["train"]["rows"] == 100 and index["splits"]["eval"]["rows"] == 10
    assert all(len(s["sha256"]) == 64 for s in index["splits"]["train"]["shards"])
    assert "local file" in index["source"] and "after the first 100" in index["held_out_note"]
    with pytest.raises(ShardError, match="another tokenizer"):
        open_shards(folder, "some other tokenizer")
    with pytest.raises(UsageError):
        list(CorpusStream(str(tmp_path / "nothing.txt"), 10, 0))
    assert torch.equal(torch.as_tensor(np.asarray(open_shards(folder)["train"][:5]).astype(np.int64)),
                       torch.as_tensor(tokenize_rows(load_corpus(str(corpus), 100, 10).train, tok)[:5]).long())


def test_the_fast_backend_gives_the_ids_the_tokenizer_gives(tok):
    from core.lm.bpe import train_bpe

    rows = [*ROWS[:200], "你好，世界 <|endoftext|> 再见", "  two  spaces ", "émoji 🙂 ok", ""]
    for tokenizer in (tok, train_bpe(ROWS + ["你好，世界"], 400, length=len(ROWS) + 1)):
        ids = tokenizer(rows, add_special_tokens=False)["input_ids"]
        expected = [t for row in ids for t in (*row, tokenizer.eos_token_id)]
        assert tokenize_rows(rows, tokenizer).tolist() == expected


def test_a_sound_folder_written_meanwhile_is_kept_and_a_damaged_one_replaced(tmp_path):
    first = write_small(tmp_path / "shards")
    before = (first / "train-00000.bin").stat().st_mtime_ns
    with ShardWriter(tmp_path / "shards", 50_257, "fp", shard_tokens=2000) as writer:  # a second writer, same data
        writer.add("train", np.arange(5000) % 50_000, 10)
        writer.finish()
    assert (first / "train-00000.bin").stat().st_mtime_ns == before  # the first one stands
    (first / "train-00001.bin").write_bytes(b"cut")
    write_small(tmp_path / "shards")
    assert open_shards(first)["train"][4999] == 4999  # rebuilt
    assert [p.name for p in tmp_path.iterdir()] == ["shards"]
