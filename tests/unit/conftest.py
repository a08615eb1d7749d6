"""Fixtures shared by the engine's unit tests."""

from __future__ import annotations

import json

import pytest

from core.lm import demo as demo_mod
from core.pretrain.config import PretrainConfig
from core.synthetic import bookcorpus_like_rows


@pytest.fixture(scope="module")
def demo_model_cache(tmp_path_factory):
    """A cache folder holding the eval demo's tiny model, built once per module instead of per test."""
    from core.lm import demo as demo_mod

    folder = tmp_path_factory.mktemp("cache")
    demo_mod.ensure_demo_model(folder / demo_mod.DEMO_MODEL_NAME)
    return folder


@pytest.fixture()
def shared_demo_model(demo_model_cache, monkeypatch):
    """Point LLMLAB_CACHE_DIR at the module's demo-model cache (use with pytest.mark.usefixtures)."""
    monkeypatch.setenv("LLMLAB_CACHE_DIR", str(demo_model_cache))


MMMLU_HEADER = ",Question,A,B,C,D,Answer,Subject\n"


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """Built once: the demo model, a tiny GPT-2 with a 128-token context, model folders missing parts."""
    import shutil

    from safetensors.torch import save_file
    from transformers import GPT2Config, GPT2LMHeadModel

    from core.lm.tokenizers import bundled_gpt2_tokenizer

    root = tmp_path_factory.mktemp("shared")
    cache = root / "cache"
    demo_model = demo_mod.ensure_demo_model(cache / demo_mod.DEMO_MODEL_NAME)
    gpt2 = root / "gpt2-ctx128"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=32, n_positions=128)).save_pretrained(gpt2)
    bundled_gpt2_tokenizer().save_pretrained(gpt2)
    no_weights = shutil.copytree(demo_model, root / "no-weights")
    (no_weights / "model.safetensors").unlink()
    no_tokenizer = shutil.copytree(demo_model, root / "no-tokenizer")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (no_tokenizer / name).unlink()
    damaged = shutil.copytree(demo_model, root / "damaged-weights")
    whole = (damaged / "model.safetensors").read_bytes()
    (damaged / "model.safetensors").write_bytes(whole[: len(whole) // 2])  # a torn download
    save_file({"x": __import__("torch").zeros(4)}, str(root / "weights.safetensors"))
    return {"cache": cache, "model": demo_model, "gpt2": gpt2, "no_weights": no_weights,
            "no_tokenizer": no_tokenizer, "damaged": damaged, "weights": root / "weights.safetensors"}


@pytest.fixture()
def world(shared, tmp_path, monkeypatch):
    """Input files in tmp_path/in, and a runs folder holding one finished run of each kind."""
    monkeypatch.setenv("LLMLAB_CACHE_DIR", str(shared["cache"]))
    runs = tmp_path / "runs"
    monkeypatch.setenv("LLMLAB_RUNS_DIR", str(runs))
    inp = tmp_path / "in"
    inp.mkdir()
    corpus = "\n".join(bookcorpus_like_rows(40, seed=1)) + "\n"
    (inp / "corpus.txt").write_text(corpus, encoding="utf-8")
    (inp / "empty.txt").write_bytes(b"")
    (inp / "empty.csv").write_bytes(b"")
    binary = bytes(range(256)) * 16
    (inp / "binary.txt").write_bytes(binary)
    (inp / "binary.csv").write_bytes(binary)
    (inp / "notext.csv").write_text("sentence,label\nhello there,1\n", encoding="utf-8")
    (inp / "gbk.csv").write_bytes("text\n他走向门口。\n她笑了。\n".encode("gbk"))
    (inp / "utf16.txt").write_text("he walked to the door .\n", encoding="utf-16")
    (inp / "utf16.csv").write_text(MMMLU_HEADER + "0,问题,是,否,对,错,A,moral_scenarios\n", encoding="utf-16")
    (inp / "gbk-mmmlu.csv").write_bytes((MMMLU_HEADER + "0,问题,是,否,对,错,A,moral_scenarios\n").encode("gbk"))
    (inp / "cols.csv").write_text(",Question,A,B,C,Answer\n0,q,a,b,c,A\n", encoding="utf-8")
    (inp / "ok.csv").write_text(MMMLU_HEADER + "0,Is water wet?,yes,no,maybe,never,A,moral_scenarios\n"
                                "1,Is fire cold?,yes,no,maybe,never,B,moral_scenarios\n", encoding="utf-8")
    (inp / "a-file").write_text("not a folder\n", encoding="utf-8")
    (inp / "notok").mkdir()
    (inp / "notok" / "config.json").write_text('{"model_type": "gpt2"}', encoding="utf-8")

    # A finished eval run and a stopped pretraining run whose only checkpoint is damaged.
    eval_run = runs / "20260101-000000-eval"
    eval_run.mkdir(parents=True)
    (eval_run / "config.json").write_text(json.dumps({"kind": "eval", "demo": True, "settings_hash": "x"}), encoding="utf-8")
    (eval_run / "results.jsonl").write_text('{"index": 0, "key": "k"}\n', encoding="utf-8")
    (eval_run / "summary.json").write_text('{"status": "completed"}', encoding="utf-8")
    pre_run = runs / "20260101-000000-pretrain"
    step = pre_run / "checkpoints" / "step-000004"
    step.mkdir(parents=True)
    cfg = PretrainConfig(data=str(inp / "corpus.txt"), rows=30, eval_rows=0, epochs=1, tokenizer="gpt2-bundled",
                         model_size="tiny", block_size=32, batch_size=8, out=str(pre_run))
    (pre_run / "config.json").write_text(json.dumps(cfg.to_dict()), encoding="utf-8")
    (pre_run / "summary.json").write_text('{"status": "stopped"}', encoding="utf-8")
    (pre_run / "model").mkdir()
    (pre_run / "model" / "config.json").write_text('{"model_type": "gpt2"}', encoding="utf-8")
    (step / "COMPLETE").write_text("ok\n")
    (step / "model.safetensors").write_bytes(b"\x00garbage, not a tensor file" * 10)
    (step / "state.json").write_text('{"step": 4}')
    return {"in": inp, "runs": runs, "eval_run": eval_run, "pre_run": pre_run, **shared}
