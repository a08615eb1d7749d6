"""`llmlab finetune` end to end on the tiny demo model: files, a falling loss, the adapter, eval --adapter, resume, bad input."""

from __future__ import annotations

import json

import pytest
import torch

from core.cli import main
from core.errors import UsageError
from core.finetune.config import demo_config
from core.finetune.run import resume_config, run_finetune
from core.lm import demo as demo_mod
from core.runs import iter_jsonl, read_json

pytestmark = pytest.mark.usefixtures("shared_demo_model")


def quiet(_line: str) -> None:
    pass


def small(out, **kw):
    return demo_config(out=str(out), **{"epochs": 2, **kw})


@pytest.fixture(scope="module")
def tuned(demo_model_cache, tmp_path_factory):
    """One demo fine-tune shared by the module's read-only tests."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMLAB_CACHE_DIR", str(demo_model_cache))
        out = tmp_path_factory.mktemp("ft") / "run"
        yield out, run_finetune(small(out, epochs=4), log=quiet)


def test_a_demo_fine_tune_writes_every_file_and_its_loss_falls(tuned):
    out, summary = tuned
    for name in ("config.json", "events.jsonl", "summary.json", "report.md", "loss.png", "results.jsonl",
                 "results_before.jsonl", "data/train.jsonl", "data/val.jsonl", "data/test.jsonl",
                 "adapter/adapter_config.json", "adapter/adapter_model.safetensors"):
        assert (out / name).exists(), name
    assert summary["status"] == "completed" and summary["kind"] == "finetune"
    losses = [e["loss"] for e in iter_jsonl(out / "events.jsonl") if e["type"] == "loss"]
    assert losses[-1] < losses[0] - 0.5, losses
    assert summary["val_loss_by_epoch"]["4"] < summary["val_loss_by_epoch"]["1"]
    assert summary["best_val_loss"] == min(v["val_loss"] for v in summary["val_losses"])
    assert summary["train_questions"] == 72 and summary["val"] == summary["test"] == 18 and summary["train_examples"] == 144
    assert summary["leak_check"] == {"question_ids_in_more_than_one_split": 0, "checked": True}
    assert summary["test_answered_before"] == summary["test_answered_after"] == 18
    assert "## Questions that flipped" in (out / "report.md").read_text(encoding="utf-8")


def test_split_files_let_a_reader_check_copies_and_leaks_by_hand(tuned):
    out, _ = tuned
    rows = {name: list(iter_jsonl(out / "data" / f"{name}.jsonl")) for name in ("train", "val", "test")}
    for row in rows["train"]:  # every copy's gold letter points at the same answer text as in its target
        assert row["target"] == f"{row['gold']}) {row['options'][row['gold']]}"
        assert row["prompt"].startswith("问题: ") and f"{row['gold']}) {row['options'][row['gold']]}" in row["prompt"]
    by_id: dict[str, set] = {}
    for row in rows["train"]:
        by_id.setdefault(row["question_id"], set()).add(row["options"][row["gold"]])
    assert all(len(texts) == 1 for texts in by_id.values())  # the shuffled copy's answer is the original answer
    ids = {name: {r["question_id"] for r in part} for name, part in rows.items()}
    assert not (ids["train"] & ids["val"] or ids["train"] & ids["test"] or ids["val"] & ids["test"])


def test_trainable_ratio_against_a_hand_count(tuned):
    _, summary = tuned
    # The demo model: hidden 64, 2 layers, 4 heads of 16, 2 KV heads. LoRA r=8 on q/k/v/o adds r*(in+out):
    # q 64->64: 1024, k 64->32: 768, v 64->32: 768, o 64->64: 1024; 3,584 per layer, 7,168 in all.
    assert summary["trainable_params"] == 7168
    from core.lm.demo import build_tiny_qwen2, gpt2_tokenizer

    base_total = sum(p.numel() for p in build_tiny_qwen2(gpt2_tokenizer()).parameters())
    assert summary["total_params"] == base_total
    assert summary["trainable_ratio"] == pytest.approx(7168 / base_total)


def test_prompt_tokens_carry_no_loss_and_the_target_loss_equals_hf(tuned):
    from transformers import AutoModelForCausalLM

    from core.finetune.train import collate, encode, target_loss
    from core.lm.loading import load_tokenizer

    folder = demo_mod.ensure_demo_model()
    tokenizer = load_tokenizer(folder)
    rows = list(iter_jsonl(tuned[0] / "data" / "val.jsonl"))[:3]
    examples, _ = encode(tokenizer, rows, max_length=512)
    for row, example in zip(rows, examples):
        prompt = tokenizer(row["prompt"])["input_ids"]
        assert example.labels[:len(prompt)] == [-100] * len(prompt)
        assert example.labels[len(prompt):] == tokenizer(row["target"], add_special_tokens=False)["input_ids"] + [
            tokenizer.eos_token_id]
    model = AutoModelForCausalLM.from_pretrained(folder)
    batch = collate(examples, tokenizer.pad_token_id, "cpu")
    with torch.no_grad():
        torch.testing.assert_close(target_loss(model, batch), model(**batch).loss)


def test_the_adapter_loads_back_and_changes_the_answers(tuned):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from core.lm.engine import generate_answers
    from core.lm.loading import load_tokenizer

    folder = demo_mod.ensure_demo_model()
    tokenizer = load_tokenizer(folder)
    prompts = [r["prompt"] for r in iter_jsonl(tuned[0] / "data" / "test.jsonl")][:6]
    base = AutoModelForCausalLM.from_pretrained(folder).eval()
    before, _ = generate_answers(base, tokenizer, prompts, max_new_tokens=8, batch_size=6)
    tuned_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(folder), str(tuned[0] / "adapter")).eval()
    after, _ = generate_answers(tuned_model, tokenizer, prompts, max_new_tokens=8, batch_size=6)
    assert [g.text for g in before] != [g.text for g in after]
    # results.jsonl holds what this adapter answers (the after-test used the kept adapter)
    saved = {r["prompt"]: r["output"] for r in iter_jsonl(tuned[0] / "results.jsonl")}
    assert all(saved[p].startswith(g.text[:4]) for p, g in zip(prompts, after))


def test_eval_with_an_adapter_names_it_and_answers_as_the_tuned_model(tuned, tmp_path, capsys):
    out = tmp_path / "ev"
    assert main(["eval", "--demo", "--adapter", str(tuned[0]), "--subject", "all", "--limit", "6", "--max-new-tokens", "8",
                 "--out", str(out)]) == 0
    summary = read_json(out / "summary.json")
    assert summary["adapter"] == str(tuned[0] / "adapter") and "+ adapter" in summary["model_label"]
    plain = tmp_path / "plain"
    assert main(["eval", "--demo", "--subject", "all", "--limit", "6", "--max-new-tokens", "8", "--out", str(plain)]) == 0
    outputs = lambda run: [r["output"] for r in sorted(iter_jsonl(run / "results.jsonl"), key=lambda r: r["index"])]  # noqa: E731
    assert outputs(out) != outputs(plain)
    assert read_json(out / "config.json")["settings"]["adapters"]  # a resume would notice a retrained adapter


def test_a_stopped_fine_tune_resumes_to_the_same_end(tmp_path):
    full = run_finetune(small(tmp_path / "full"), log=quiet)
    calls = {"n": 0}

    def stop_after_some_steps():
        calls["n"] += 1
        return calls["n"] >= 20

    part = run_finetune(small(tmp_path / "part"), log=quiet, should_stop=stop_after_some_steps)
    assert part["status"] == "stopped" and 0 < part["steps"] < full["steps"]
    cfg, checkpoint = resume_config(tmp_path / "part")
    resumed = run_finetune(cfg, log=quiet, resume_from=checkpoint)
    assert resumed["status"] == "completed" and resumed["steps"] == full["steps"]
    assert resumed["val_loss_by_epoch"] == pytest.approx(full["val_loss_by_epoch"], abs=2e-3)
    assert resumed["test_answered_after"] == 18
    events = [e["type"] for e in iter_jsonl(tmp_path / "part" / "events.jsonl")]
    assert events.count("start") == 2 and events.count("resume") == 1 and events[-1] == "end"


@pytest.mark.parametrize("args,message", [
    (["--rank", "0"], "--rank must be at least 1"),
    (["--alpha", "0"], "--alpha must be at least 1"),
    (["--targets", "q_proj,nonsense"], "its linear layers are: down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj"),
    (["--shuffle-copies", "25"], "more than the 24 orders"),
    (["--val-per-subject", "10", "--test-per-subject", "10"], "no training questions left"),
])
def test_bad_options_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    before = sorted(tmp_path.iterdir())
    assert main(["finetune", "--demo", *args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and message in err and err.count("llmlab: error:") == 1
    # nothing was written: --targets too is checked (on a weightless skeleton of the model) before any folder exists
    assert sorted(tmp_path.iterdir()) == before


def test_an_adapter_for_another_base_is_refused_before_anything_runs(tmp_path, capsys):
    from peft import LoraConfig, get_peft_model
    from transformers import GPT2Config, GPT2LMHeadModel

    other = get_peft_model(GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=32)),
                           LoraConfig(r=2, target_modules=["c_attn"], fan_in_fan_out=True))
    other.save_pretrained(tmp_path / "gpt2-adapter")
    assert main(["eval", "--demo", "--adapter", str(tmp_path / "gpt2-adapter"), "--out", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err
    assert "does not fit the model" in err and not (tmp_path / "ev").exists()


def test_data_is_required_without_the_demo(capsys):
    assert main(["finetune"]) == 2
    assert "--data is required" in capsys.readouterr().err


def test_resume_refuses_a_run_whose_data_changed(tmp_path):
    data = tmp_path / "exam.csv"
    data.write_text(open(demo_config().data, encoding="utf-8").read(), encoding="utf-8")
    calls = {"n": 0}

    def stop_soon():
        calls["n"] += 1
        return calls["n"] >= 3

    run_finetune(small(tmp_path / "run", data=str(data)), log=quiet, should_stop=stop_soon)
    text = data.read_text(encoding="utf-8").replace("What is 18 + 14?", "What is 18 plus 14?")
    data.write_text(text, encoding="utf-8")
    cfg, checkpoint = resume_config(tmp_path / "run")
    with pytest.raises(UsageError, match="the data changed"):
        run_finetune(cfg, log=quiet, resume_from=checkpoint)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "stopped"


def test_retain_check_scores_base_and_tuned_on_squad(tmp_path):
    from core.squad.config import DEMO_SQUAD

    summary = run_finetune(small(tmp_path / "r", retain_check=str(DEMO_SQUAD), retain_limit=6), log=quiet)
    assert summary["squad_before"]["n"] == summary["squad_after"]["n"] == 6
    assert set(summary["retention"]) == {"exact_match", "f1"} and summary["retain_threshold"] == 0.9
    assert isinstance(summary["retention_ok"], bool)
    assert len(list(iter_jsonl(tmp_path / "r" / "results_squad_after.jsonl"))) == 6
    assert "Retention" in (tmp_path / "r" / "report.md").read_text(encoding="utf-8")


def test_math_data_fine_tunes_with_the_math_template_and_a_contest_score(tmp_path):
    from core.math.config import DEMO_MATH

    summary = run_finetune(small(tmp_path / "m", data=str(DEMO_MATH), shuffle_copies=1, val_per_subject=10,
                                 test_per_subject=10, max_length=64), log=quiet)
    assert summary["template"] == "math" and summary["test"] == 10 and summary["train_questions"] == 220
    assert summary["score"] == pytest.approx((1 - summary["trainable_ratio"]) * 0.3 + summary["test_accuracy_after"] * 0.7,
                                             abs=1e-6)
    row = next(iter_jsonl(tmp_path / "m" / "data" / "train.jsonl"))
    assert row["target"] == row["solution"] and row["prompt"].startswith("Question: ")
    with pytest.raises(UsageError, match="math questions have none"):
        run_finetune(small(tmp_path / "m2", data=str(DEMO_MATH)), log=quiet)  # the demo's 2 shuffle copies


def _nan_on_training_calls(monkeypatch, calls):
    """target_loss returns NaN on these training calls (1-based); val-loss calls are left alone."""
    from core.finetune import train as ft_train

    real, count = ft_train.target_loss, {"n": 0}

    def maybe_nan(model, batch):
        loss = real(model, batch)
        if model.training:
            count["n"] += 1
            if count["n"] in calls:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(ft_train, "target_loss", maybe_nan)


def test_non_finite_fine_tune_losses_skip_their_update_like_pretraining(tmp_path, monkeypatch):
    from safetensors.torch import load_file

    _nan_on_training_calls(monkeypatch, {3, 4})
    summary = run_finetune(small(tmp_path / "run", epochs=1), log=quiet)
    assert summary["status"] == "completed" and summary["nonfinite_steps"] == 2
    adapter = load_file(str(tmp_path / "run" / "adapter" / "adapter_model.safetensors"))
    assert all(torch.isfinite(w).all() for w in adapter.values())


def test_too_many_non_finite_fine_tune_losses_in_a_row_fail_the_run(tmp_path, monkeypatch, capsys):
    _nan_on_training_calls(monkeypatch, set(range(2, 1000)))
    assert main(["finetune", "--demo", "--epochs", "2", "--log-every", "1", "--out", str(tmp_path / "run")]) == 1
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["status"] == "failed" and "not finite for 5 steps in a row" in summary["error"]
    assert summary["steps"] == 1 + 5 and summary["nonfinite_steps"] == 5
    assert "not finite" in capsys.readouterr().err
    assert not (tmp_path / "run" / "results.jsonl").exists()  # no tuned test answers from a broken adapter


def test_many_target_positions_go_through_the_chunked_loss_with_the_same_value_and_gradients(monkeypatch):
    """Above CHUNKED_LOSS_FROM target positions (math solutions) the loss is computed a chunk of logits at a time:
    the same value and the same gradients as the plain output layer."""
    from core.finetune import train as ft_train
    from core.lm import demo as demo_lm
    from core.train import losses

    model = demo_lm.build_tiny_qwen2(demo_lm.gpt2_tokenizer())
    model.float().train()
    ids = torch.randint(0, model.config.vocab_size, (2, 40), generator=torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[:, :10] = -100  # the prompt: no loss
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    calls = []
    real = losses.linear_cross_entropy
    monkeypatch.setattr(ft_train, "linear_cross_entropy", lambda *a, **k: calls.append(1) or real(*a, **k))

    def loss_and_grads(threshold: int):
        monkeypatch.setattr(ft_train, "CHUNKED_LOSS_FROM", threshold)
        model.zero_grad()
        loss = ft_train.target_loss(model, batch)
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    plain, plain_grads = loss_and_grads(10_000)
    assert not calls
    chunked, chunked_grads = loss_and_grads(8)
    assert calls  # 58 target positions > 8: the chunked path ran
    torch.testing.assert_close(chunked, plain, rtol=1e-5, atol=1e-6)
    assert len(plain_grads) == len(chunked_grads)
    for a, b in zip(plain_grads, chunked_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
