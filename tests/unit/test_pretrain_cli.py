"""`llmlab pretrain` end to end on CPU: every file of the run directory, a falling loss, bad input."""

from __future__ import annotations

import json

import pytest

from core.cli import main
from core.runs import iter_jsonl, read_json
from core.synthetic import bookcorpus_like_rows

RUN_FILES = ["config.json", "events.jsonl", "summary.json", "loss.png", "report.md",
             "model/config.json", "model/model.safetensors", "model/tokenizer.json"]


def tiny_args(data_path, out, *extra):
    return ["pretrain", "--data", str(data_path), "--model-size", "tiny", "--tokenizer", "gpt2",
            "--rows", "300", "--eval-rows", "40", "--epochs", "2", "--block-size", "64", "--batch-size", "8",
            "--lr", "3e-3", "--log-every", "1", "--out", str(out), *extra]


@pytest.fixture()
def corpus_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(bookcorpus_like_rows(400, seed=7)) + "\n", encoding="utf-8")
    return path


def assert_complete_run(out):
    for name in RUN_FILES:
        assert (out / name).exists(), name
    summary = read_json(out / "summary.json")
    events = list(iter_jsonl(out / "events.jsonl"))
    losses = [e["loss"] for e in events if e["type"] == "loss"]
    assert summary["status"] == "completed"
    assert events[0]["type"] == "start" and events[-1]["type"] == "end"
    assert {"data", "tokenize", "model_init", "train", "save", "report"} <= set(summary["phases"])
    assert summary["total_seconds"] >= summary["train_seconds"] > 0
    assert summary["steps"] == [e for e in events if e["type"] == "loss"][-1]["step"]
    assert losses[-1] < losses[0] - 1.0, losses
    assert summary["final_loss"] == pytest.approx(losses[-1], abs=1e-4)
    assert summary["hardware"]["cpu"] and summary["optimizations"]
    assert "## Training loss" in (out / "report.md").read_text(encoding="utf-8")
    return summary, events


def test_tiny_run_on_a_local_file_writes_a_complete_run_directory(corpus_file, tmp_path):
    out = tmp_path / "run"
    assert main(tiny_args(corpus_file, out)) == 0
    summary, events = assert_complete_run(out)
    assert summary["rows"] == 300 and summary["eval_rows"] == 40
    # Exactly the first 300 rows, EOS appended to each, are the training tokens.
    from core.lm.tokenizers import bundled_gpt2_tokenizer

    tok = bundled_gpt2_tokenizer()
    rows = corpus_file.read_text(encoding="utf-8").splitlines()[:300]
    assert summary["tokens_per_epoch"] == sum(len(tok(r)["input_ids"]) + 1 for r in rows)
    assert len([e for e in events if e["type"] == "eval"]) == 2
    assert json.loads((out / "config.json").read_text())["rows"] == 300
    # The saved weights load back as a GPT-2 model.
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(out / "model")
    assert model.config.n_layer == 2


def test_second_run_reuses_the_token_cache(corpus_file, tmp_path):
    assert main(tiny_args(corpus_file, tmp_path / "a", "--epochs", "1")) == 0
    assert main(tiny_args(corpus_file, tmp_path / "b", "--epochs", "1")) == 0
    assert read_json(tmp_path / "a" / "summary.json")["token_cache_hit"] is False
    assert read_json(tmp_path / "b" / "summary.json")["token_cache_hit"] is True
    assert read_json(tmp_path / "b" / "summary.json")["phases"]["data"] == 0.0


@pytest.mark.slow
def test_demo_runs_offline_and_its_loss_falls(tmp_path, monkeypatch):
    """The README's first command, on a quarter of the demo's rows (the same path, a quarter of the steps)."""
    monkeypatch.chdir(tmp_path)
    assert main(["pretrain", "--demo", "--rows", "500"]) == 0
    (run,) = (tmp_path / "runs").iterdir()
    summary, _ = assert_complete_run(run)
    assert summary["demo"] is True and "Demo run" in (run / "report.md").read_text(encoding="utf-8")
    assert summary["rows"] == 500 and summary["epochs_completed"] == 3


@pytest.mark.parametrize(
    "args,message",
    [
        (["--rows", "0"], "--rows must be at least 1"),
        (["--epochs", "-1"], "--epochs must be at least 1"),
        (["--rows", "ten"], "'ten' is not a valid integer"),
        (["--model-size", "huge"], "unknown --model-size 'huge'"),
        (["--data", "missing.txt"], "does not exist"),
        (["--data", "bookcorpus/bookcorpus"], "cannot reach the Hugging Face Hub"),
        (["--block-size", "4096"], "exceeds the model's context"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["pretrain", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # nothing created for a run that never started


def test_existing_out_folder_is_never_overwritten(corpus_file, tmp_path, capsys):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(tiny_args(corpus_file, out)) == 2
    assert "already exists" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_unwritable_out_is_a_usage_error(corpus_file, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(tiny_args(corpus_file, blocker / "run")) == 2
    assert "cannot create --out" in capsys.readouterr().err
