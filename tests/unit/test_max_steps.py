"""--max-steps: a run stops after N optimizer steps, its schedule planned for N, its end checked and saved like any end."""

from __future__ import annotations

import pytest

from core.cli import main
from core.pretrain.config import PretrainConfig
from core.pretrain.run import run_pretrain
from core.runs import iter_jsonl, read_json
from core.synthetic import bookcorpus_like_rows
from core.train.loop import planned_steps


def quiet(_msg: str) -> None:
    pass


@pytest.fixture()
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(bookcorpus_like_rows(160, seed=3)) + "\n", encoding="utf-8")
    return path


def small_cfg(corpus, out, **kw) -> PretrainConfig:
    base = dict(data=str(corpus), rows=120, eval_rows=20, epochs=3, tokenizer="gpt2-bundled", model_size="tiny",
                block_size=32, batch_size=4, lr=3e-3, log_every=2, out=str(out), save_minutes=0, sample_tokens=0)
    return PretrainConfig(**{**base, **kw})


def events(run, kind):
    return [e for e in iter_jsonl(run / "events.jsonl") if e["type"] == kind]


def test_planned_steps_are_the_epochs_or_the_budget_whichever_is_fewer():
    assert planned_steps(10, 4, 3) == 9  # a short last batch is a step
    assert planned_steps(10, 4, 3, max_steps=5) == 5
    assert planned_steps(10, 4, 3, max_steps=50) == 9


def test_pretraining_stops_after_max_steps_inside_an_epoch_with_the_schedule_planned_for_them(corpus, tmp_path):
    out = tmp_path / "run"
    summary = run_pretrain(small_cfg(corpus, out, max_steps=7, save_every=3, schedule="linear", warmup=1), log=quiet)
    assert summary["status"] == "completed" and summary["steps"] == 7 and summary["max_steps_reached"]
    plan = events(out, "plan")[0]
    assert plan["total_steps"] == 7 < plan["steps_per_epoch"] * 3
    losses = events(out, "loss")
    assert losses[-1]["step"] == 7 and all(e["total_steps"] == 7 for e in losses)  # the last step is a log step
    # linear decay planned for 7 steps: the rate reaches the floor (10% of --lr) at step 7, not at the epochs' end
    assert losses[-1]["lr"] == pytest.approx(3e-4, rel=1e-3)
    # the end is checked (held-out loss at the fractional epoch where it stopped) and saved as an end
    evals = events(out, "eval")
    assert evals[-1]["step"] == 7 and summary["eval_loss"] == pytest.approx(evals[-1]["eval_loss"], abs=1e-5)
    assert (out / "model" / "model.safetensors").is_file()
    assert [e["step"] for e in events(out, "checkpoint")] == [3, 6, 7]
    assert read_json(out / "checkpoints" / "step-000007" / "state.json")["epoch"] == 4  # "nothing left to do"
    assert main(["pretrain", "--resume", str(out)]) == 0  # a resume of a finished budget trains nothing more
    assert read_json(out / "summary.json")["steps"] == 7


def test_a_run_stopped_before_its_budget_resumes_to_exactly_the_budget(corpus, tmp_path):
    import signal

    from core.signals import StopRequest

    whole = run_pretrain(small_cfg(corpus, tmp_path / "whole", max_steps=9, dropout=0.0), log=quiet)
    stop = StopRequest()
    out = tmp_path / "part"

    def at_step(step, total):
        if step == 4:
            stop.signal = signal.SIGINT

    stopped = run_pretrain(small_cfg(corpus, out, max_steps=9, dropout=0.0), log=quiet, stop=stop, on_step=at_step)
    assert stopped["status"] == "stopped" and stopped["steps"] == 4
    assert main(["pretrain", "--resume", str(out)]) == 0
    resumed = read_json(out / "summary.json")
    assert resumed["steps"] == 9 and resumed["final_loss"] == pytest.approx(whole["final_loss"], abs=1e-4)
    assert resumed["eval_loss"] == pytest.approx(whole["eval_loss"], abs=1e-4)


@pytest.mark.usefixtures("shared_demo_model")
def test_finetuning_stops_after_max_steps(tmp_path):
    out = tmp_path / "run"
    assert main(["finetune", "--demo", "--epochs", "2", "--max-steps", "3", "--out", str(out)]) == 0
    summary = read_json(out / "summary.json")
    assert summary["status"] == "completed" and summary["steps"] == 3 and summary["max_steps_reached"]
    assert events(out, "plan")[0]["total_steps"] == 3
    assert events(out, "loss")[-1]["step"] == 3 and events(out, "eval")[-1]["step"] == 3
    assert (out / "adapter" / "adapter_model.safetensors").is_file() and summary["test_answered_after"] > 0
