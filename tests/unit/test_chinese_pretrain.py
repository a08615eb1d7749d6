"""Seed 004's lessons in `llmlab pretrain`: a trained tokenizer, schedules, checks every N steps, early stop, samples."""

from __future__ import annotations

import pytest

from core import DEMO_DATA_DIR
from core.cli import main
from core.runs import iter_jsonl, read_json

ZH = str(DEMO_DATA_DIR / "demo_corpus_zh.txt")
TINY_ZH = ["--data", ZH, "--rows", "600", "--eval-rows", "60", "--model-size", "tiny", "--block-size", "64",
           "--batch-size", "8", "--lr", "3e-3", "--log-every", "1"]


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("llmlab: error:")]


@pytest.fixture(scope="module")
def zh_run(tmp_path_factory):
    """A tokenizer trained first, then a tiny model on it, checked and sampled every 5 steps."""
    out = tmp_path_factory.mktemp("zh") / "run"
    assert main(["pretrain", *TINY_ZH, "--tokenizer", "train", "--tokenizer-vocab", "600", "--epochs", "2",
                 "--eval-every", "5", "--sample-tokens", "8", "--warmup", "3", "--schedule", "wsd", "--out", str(out)]) == 0
    return out


def test_a_tokenizer_is_trained_first_and_the_model_is_built_for_it(zh_run):
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    summary = read_json(zh_run / "summary.json")
    tok = AutoTokenizer.from_pretrained(zh_run / "model")
    assert (zh_run / "tokenizer" / "tokenizer.json").is_file() and len(tok) == 600
    config = AutoConfig.from_pretrained(zh_run / "model")
    assert config.vocab_size == len(tok)
    assert config.eos_token_id == tok.eos_token_id == tok.convert_tokens_to_ids("<|endoftext|>")
    assert GenerationConfig.from_pretrained(zh_run / "model").pad_token_id == tok.eos_token_id
    ours = summary["tokenizer_compression"]["llmlab BPE (this run)"]["tokens_per_char"]
    gpt2 = next(v for k, v in summary["tokenizer_compression"].items() if k.startswith("gpt2"))["tokens_per_char"]
    assert ours < gpt2
    assert "## Tokenizer" in (zh_run / "report.md").read_text(encoding="utf-8")


def test_held_out_checks_every_n_steps_and_a_falling_eval_loss(zh_run):
    summary = read_json(zh_run / "summary.json")
    evals = [e for e in iter_jsonl(zh_run / "events.jsonl") if e["type"] == "eval"]
    steps_per_epoch = summary["steps"] // 2
    expected = sorted({s for s in range(5, summary["steps"] + 1, 5) if s % steps_per_epoch} | {steps_per_epoch, summary["steps"]})
    assert [e["step"] for e in evals] == expected
    assert [h["step"] for h in summary["eval_history"]] == expected
    assert evals[-1]["eval_loss"] < evals[0]["eval_loss"]
    assert len(summary["eval_losses"]) == 2  # the per-epoch figures are still the epoch ends


def test_every_check_draws_greedy_and_top_p_samples_as_events(zh_run):
    from core.pretrain.samples import ZH_PROMPTS

    samples = [e for e in iter_jsonl(zh_run / "events.jsonl") if e["type"] == "sample"]
    evals = [e for e in iter_jsonl(zh_run / "events.jsonl") if e["type"] == "eval"]
    assert len(samples) == len(evals) * len(ZH_PROMPTS) * 2  # the corpus is Chinese: the Chinese prompts
    for sample in samples:
        assert {"step", "prompt", "text", "mode", "distinct_2", "longest_repeat", "degenerate"} <= set(sample)
        assert sample["prompt"] in ZH_PROMPTS and sample["mode"] in ("greedy", "top_p")
        assert 0 <= sample["distinct_2"] <= 1 and sample["longest_repeat"] >= 1
    report = (zh_run / "report.md").read_text(encoding="utf-8")
    assert "## Generation samples" in report and samples[-1]["prompt"] in report
    summary = read_json(zh_run / "summary.json")
    assert summary["degenerate_samples"] == sum(s["degenerate"] for s in samples)


def test_a_second_pretrain_reuses_a_trained_tokenizer_run_folder(zh_run, tmp_path):
    from transformers import AutoConfig

    out = tmp_path / "again"
    assert main(["pretrain", *TINY_ZH, "--tokenizer", str(zh_run), "--epochs", "1", "--sample-tokens", "0",
                 "--out", str(out)]) == 0
    assert AutoConfig.from_pretrained(out / "model").vocab_size == 600
    assert not (out / "tokenizer").exists()  # nothing trained this time


@pytest.mark.parametrize("ids, d2, repeat, flagged", [
    ([5] * 12, 1 / 11, 12, True),                      # one token over and over
    ([1, 2] * 8, 2 / 15, 1, True),                     # two tokens alternating: few distinct pairs
    (list(range(12)), 1.0, 1, False),
    ([1, 2, 3, 4, 7, 7, 7, 7, 7, 7, 7, 7, 9], 6 / 12, 8, True),  # varied but a run of eight
    ([3, 3, 3], 0.5, 3, False),                        # too short to judge
])
def test_degeneration_figures(ids, d2, repeat, flagged):
    from core.pretrain.samples import distinct_2, is_degenerate, longest_repeat

    assert distinct_2(ids) == pytest.approx(d2) and longest_repeat(ids) == repeat
    assert is_degenerate(distinct_2(ids), longest_repeat(ids), len(ids)) is flagged


def test_a_model_stuck_on_one_token_is_flagged_in_the_events_and_the_log(tmp_path, capsys, monkeypatch):
    """Seed 004's broken model: the samples repeat one mark. Forced here by a generate that only says it."""
    from transformers import GPT2LMHeadModel

    def stuck(self, input_ids, max_new_tokens, **kwargs):
        import torch

        return torch.cat([input_ids, torch.full((1, max_new_tokens), 7, dtype=input_ids.dtype)], dim=1)

    monkeypatch.setattr(GPT2LMHeadModel, "generate", stuck)
    out = tmp_path / "run"
    assert main(["pretrain", *TINY_ZH, "--tokenizer", "train", "--tokenizer-vocab", "400", "--epochs", "1",
                 "--sample-tokens", "10", "--sample-prompts", "村民们都很高兴", "--out", str(out)]) == 0
    samples = [e for e in iter_jsonl(out / "events.jsonl") if e["type"] == "sample"]
    assert samples and all(s["degenerate"] and s["longest_repeat"] == 10 for s in samples)
    assert {s["prompt"] for s in samples} == {"村民们都很高兴"}
    assert "degenerate sample at step" in capsys.readouterr().out
    assert read_json(out / "summary.json")["degenerate_samples"] == len(samples)


def test_early_stop_ends_the_run_when_the_held_out_loss_stops_improving(tmp_path, monkeypatch):
    import core.pretrain.train as train_mod

    losses = iter([5.0, 5.1, 5.2, 5.3, 5.4, 5.5, 5.6, 5.7, 5.8, 5.9, 6.0] + [7.0] * 100)
    monkeypatch.setattr(train_mod, "evaluate_loss", lambda *a, **k: next(losses))
    out = tmp_path / "run"
    assert main(["pretrain", *TINY_ZH, "--tokenizer", "train", "--tokenizer-vocab", "400", "--epochs", "3",
                 "--eval-every", "2", "--early-stop", "2", "--sample-tokens", "0", "--out", str(out)]) == 0
    summary = read_json(out / "summary.json")
    assert summary["stopped_early"] is True and summary["status"] == "completed"
    assert [h["step"] for h in summary["eval_history"]] == [2, 4, 6] and summary["steps"] == 6
    assert any("early stop after step 6" in e.get("message", "") for e in iter_jsonl(out / "events.jsonl"))


@pytest.mark.parametrize("schedule", ["cosine", "linear", "constant", "wsd"])
@pytest.mark.parametrize("warmup", [10, 0.1])
def test_schedules_warm_up_to_the_peak_then_follow_their_shape(schedule, warmup):
    import torch

    from core.optim import make_scheduler

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_scheduler(opt, total_steps=100, warmup=warmup, min_lr_ratio=0.1, schedule=schedule)
    lrs = []
    for _ in range(100):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[0] < 0.2 and lrs[10] == pytest.approx(1.0)  # warm-up of 10 steps either way
    assert all(a <= b + 1e-9 for a, b in zip(lrs[:10], lrs[1:11]))
    end = {"cosine": 0.1, "linear": 0.1, "constant": 1.0, "wsd": 0.1}[schedule]
    assert lrs[-1] == pytest.approx(end, abs=0.03)
    if schedule == "wsd":
        assert all(lr == pytest.approx(1.0) for lr in lrs[10:80]) and lrs[90] < 0.9  # stable, then the last 20% decay
    if schedule in ("cosine", "linear"):
        assert lrs[50] < 0.9


def test_warmup_is_a_share_below_one_and_steps_from_one_on():
    from core.optim import warmup_steps

    assert warmup_steps(0.05, 200) == 10 and warmup_steps(25, 200) == 25 and warmup_steps(500, 200) == 200
    assert warmup_steps(0.0, 200) == 1


def test_weight_decay_skips_biases_and_layernorm_gains():
    from transformers import GPT2Config, GPT2LMHeadModel

    from core.optim import param_groups

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=50, n_positions=16))
    decayed, plain = param_groups(model, 0.1)
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decayed["params"]) and all(p.dim() == 1 for p in plain["params"])
    assert any(p is model.transformer.ln_f.weight for p in plain["params"])


@pytest.mark.parametrize("args, message", [
    (["--tokenizer", "train", "--tokenizer-vocab", "100"], "below the 256 byte symbols"),
    (["--schedule", "step"], "step"),
    (["--warmup", "-1"], "--warmup"),
    (["--eval-every", "-3"], "--eval-every must be 0 or more"),
    (["--sample-prompts", "很长" * 300, "--tokenizer", "train", "--tokenizer-vocab", "300"], "do not fit the model's"),
])
def test_bad_pretrain_options_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    out = tmp_path / "run"
    assert main(["pretrain", *TINY_ZH, *args, "--out", str(out)]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert message in line
