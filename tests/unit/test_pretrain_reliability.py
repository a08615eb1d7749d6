"""Checkpoints, resume, clean stops, non-finite losses and out-of-memory retries in pretraining."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from core.checkpoints import MARKER, list_checkpoints
from core.cli import main
from core.errors import UsageError
from core.pretrain import model as model_module
from core.pretrain.config import PretrainConfig
from core.pretrain.run import resume_config, run_pretrain
from core.runs import iter_jsonl, read_json
from core.signals import StopRequest
from core.synthetic import bookcorpus_like_rows


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(bookcorpus_like_rows(160, seed=3)) + "\n", encoding="utf-8")
    return path


def small_cfg(corpus, out, **kw) -> PretrainConfig:
    base = dict(data=str(corpus), rows=120, eval_rows=20, epochs=2, tokenizer="gpt2-bundled", model_size="tiny",
                block_size=32, batch_size=4, lr=3e-3, log_every=1, out=str(out), save_minutes=0)
    return PretrainConfig(**{**base, **kw})


def weights(run_dir):
    from safetensors.torch import load_file

    return load_file(str(run_dir / "model" / "model.safetensors"))


def losses(run_dir):
    from core.runlog import RunFolder

    return RunFolder(run_dir).loss_series()


def quiet(_msg: str) -> None:
    pass


def assert_same_weights(a, b, atol=1e-5):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=atol, rtol=1e-4, msg=k)


@pytest.mark.parametrize("optimizer", ["adamw", "muon"])
def test_stopped_then_resumed_run_matches_an_uninterrupted_one(corpus, tmp_path, optimizer):
    full = run_pretrain(small_cfg(corpus, tmp_path / "full", optimizer=optimizer), log=quiet)
    assert full["status"] == "completed"

    stop = StopRequest()

    def stop_at_step_9(step, total):
        if step == 9:
            stop.signal = signal.SIGINT

    part = run_pretrain(small_cfg(corpus, tmp_path / "part", optimizer=optimizer), on_step=stop_at_step_9, stop=stop,
                        log=quiet)
    assert part["status"] == "stopped" and part["steps"] == 9
    assert [p.name for p in list_checkpoints(tmp_path / "part")] == ["step-000009"]

    cfg, checkpoint = resume_config(tmp_path / "part")
    assert cfg.optimizer == optimizer
    resumed = run_pretrain(cfg, resume_from=checkpoint, log=quiet)
    assert resumed["status"] == "completed" and resumed["steps"] == full["steps"]
    assert_same_weights(tmp_path / "full", tmp_path / "part")
    (train_a, eval_a), (train_b, eval_b) = losses(tmp_path / "full"), losses(tmp_path / "part")
    assert [s for s, _ in train_a] == [s for s, _ in train_b]
    assert [v for _, v in train_b] == pytest.approx([v for _, v in train_a], abs=1e-4)
    assert [v for _, v in eval_b] == pytest.approx([v for _, v in eval_a], abs=1e-4)
    assert resumed["eval_losses"] == pytest.approx(full["eval_losses"], abs=1e-4)
    # Throughput counts only what each process trained, so a resume does not claim the tokens before it.
    assert 0 < part["tokens_trained"] < full["tokens_trained"]
    assert part["tokens_trained"] + resumed["tokens_trained"] == full["tokens_trained"]
    assert resumed["tokens_per_second"] == pytest.approx(resumed["tokens_trained"] / resumed["train_seconds"], rel=1e-3)


def test_checkpoints_keep_the_newest_two_and_ignore_torn_ones(corpus, tmp_path):
    run_pretrain(small_cfg(corpus, tmp_path / "run", save_every=4), log=quiet)
    names = [p.name for p in list_checkpoints(tmp_path / "run")]
    assert len(names) == 2 and names[-1].endswith(f"{read_json(tmp_path / 'run' / 'summary.json')['steps']:06d}")
    torn = tmp_path / "run" / "checkpoints" / "step-999999"
    torn.mkdir()
    (torn / "model.safetensors").write_bytes(b"half a file")
    assert torn not in list_checkpoints(tmp_path / "run")
    assert all((p / MARKER).exists() for p in list_checkpoints(tmp_path / "run"))


def test_resume_refuses_runs_without_a_complete_checkpoint_or_of_another_kind(corpus, tmp_path):
    run_pretrain(small_cfg(corpus, tmp_path / "run", epochs=1), log=quiet)
    with pytest.raises(UsageError, match="no complete checkpoint"):
        resume_config(tmp_path / "run")
    other = tmp_path / "evalrun"
    other.mkdir()
    (other / "config.json").write_text('{"kind": "eval"}')
    with pytest.raises(UsageError, match="is an eval run, not a pretraining run"):
        resume_config(other)
    with pytest.raises(UsageError, match="not a run directory"):
        resume_config(tmp_path / "nothing-here")


def test_resume_refuses_a_checkpoint_whose_data_changed(corpus, tmp_path):
    stop = StopRequest()

    def stop_at_step_3(step, total):
        if step == 3:
            stop.signal = signal.SIGINT

    run_pretrain(small_cfg(corpus, tmp_path / "run"), on_step=stop_at_step_3, stop=stop, log=quiet)
    corpus.write_text("\n".join(bookcorpus_like_rows(160, seed=4)[:80]) + "\n", encoding="utf-8")  # fewer tokens now
    cfg, checkpoint = resume_config(tmp_path / "run")
    with pytest.raises(UsageError, match="the data or tokenizer changed since"):
        run_pretrain(cfg, resume_from=checkpoint, log=quiet)


def _wrap_forward(monkeypatch, wrapper):
    """Wrap the model's own forward. Its runs then need --chunked-loss off: the full-logits loss goes through that
    forward, while the chunked loss calls the model's body (model.transformer) and computes the loss itself."""
    real_build = model_module.build_model

    def build(cfg, vocab_size, eos_token_id=None):
        model = real_build(cfg, vocab_size, eos_token_id)
        model.forward = wrapper(model.forward)
        return model

    monkeypatch.setattr(model_module, "build_model", build)


NO_DROPOUT = {"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}


def test_out_of_memory_halves_the_micro_batch_with_the_same_result(corpus, tmp_path, monkeypatch):
    run_pretrain(small_cfg(corpus, tmp_path / "plain", model_overrides=NO_DROPOUT, chunked_loss="off"), log=quiet)

    def oom_above_one_sequence(forward):
        def guarded(*args, **kwargs):
            if kwargs["input_ids"].shape[0] > 1:
                raise torch.OutOfMemoryError("injected")
            return forward(*args, **kwargs)
        return guarded

    _wrap_forward(monkeypatch, oom_above_one_sequence)
    summary = run_pretrain(small_cfg(corpus, tmp_path / "oom", model_overrides=NO_DROPOUT, chunked_loss="off"), log=quiet)
    assert summary["status"] == "completed"
    assert summary["micro_batch_size"] == 1 and summary["oom_retries"] == 2
    assert [e["micro_batch_size"] for e in iter_jsonl(tmp_path / "oom" / "events.jsonl") if e["type"] == "oom"] == [2, 1]
    assert_same_weights(tmp_path / "plain", tmp_path / "oom", atol=1e-4)


def _nan_on_calls(calls):
    def wrapper(forward):
        count = {"n": 0}

        def maybe_nan(*args, **kwargs):
            out = forward(*args, **kwargs)
            count["n"] += 1
            if model_is_training(forward) and count["n"] in calls:
                out.loss = out.loss * float("nan")
            return out
        return maybe_nan
    return wrapper


def model_is_training(bound_forward) -> bool:
    return bound_forward.__self__.training


def test_non_finite_losses_skip_their_update_and_are_counted(corpus, tmp_path, monkeypatch):
    _wrap_forward(monkeypatch, _nan_on_calls({3, 4}))
    summary = run_pretrain(small_cfg(corpus, tmp_path / "run", chunked_loss="off"), log=quiet)
    assert summary["status"] == "completed" and summary["nonfinite_steps"] == 2
    assert all(torch.isfinite(w).all() for w in weights(tmp_path / "run").values())


def test_too_many_non_finite_losses_in_a_row_stop_the_run(corpus, tmp_path, monkeypatch, capsys):
    _wrap_forward(monkeypatch, _nan_on_calls(set(range(5, 1000))))
    args = ["pretrain", "--data", str(corpus), "--rows", "120", "--eval-rows", "20", "--model-size", "tiny",
            "--block-size", "32", "--batch-size", "4", "--log-every", "1", "--chunked-loss", "off",
            "--out", str(tmp_path / "run")]
    assert main(args) == 1
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["status"] == "failed" and "not finite for 5 steps in a row" in summary["error"]
    assert summary["steps"] == 4 + 5
    assert "not finite" in capsys.readouterr().err


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_stops_the_job_cleanly_with_a_checkpoint(corpus, tmp_path, sig, code):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "core", "pretrain", "--data", str(corpus), "--rows", "120", "--model-size", "tiny",
           "--block-size", "32", "--batch-size", "2", "--epochs", "50", "--log-every", "1", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.time() + 120
    while time.time() < deadline and not any(e["type"] == "loss" for e in iter_jsonl(out / "events.jsonl")):
        time.sleep(0.2)
    proc.send_signal(sig)
    assert proc.wait(timeout=120) == code, proc.stderr.read().decode()
    summary = read_json(out / "summary.json")
    assert summary["status"] == "stopped" and summary["stop_signal"] == sig
    assert list_checkpoints(out) and (out / "model" / "model.safetensors").exists()
    last = list(iter_jsonl(out / "events.jsonl"))[-1]
    assert last["type"] == "end" and last["status"] == "stopped"


def test_a_finite_loss_with_infinite_gradients_is_skipped_too(corpus, tmp_path, monkeypatch):
    real_build = model_module.build_model

    def build(cfg, vocab_size, eos_token_id=None):
        model = real_build(cfg, vocab_size, eos_token_id)
        calls = {"n": 0}

        def poison_third_backward(grad):
            calls["n"] += 1
            return grad * float("inf") if calls["n"] == 3 else grad

        model.transformer.ln_f.weight.register_hook(poison_third_backward)
        return model

    monkeypatch.setattr(model_module, "build_model", build)
    summary = run_pretrain(small_cfg(corpus, tmp_path / "run"), log=quiet)
    assert summary["status"] == "completed" and summary["nonfinite_steps"] == 1
    assert all(torch.isfinite(w).all() for w in weights(tmp_path / "run").values())
