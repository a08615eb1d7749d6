"""The kinds that judge a tuned model: squad, math (and its contest score), vote, eval with several adapters, export."""

from __future__ import annotations

import json

import pytest
import torch

from core.cli import main
from core.finetune.config import demo_config as finetune_demo
from core.finetune.run import run_finetune
from core.runs import iter_jsonl, read_json

pytestmark = pytest.mark.usefixtures("shared_demo_model")


def quiet(_line: str) -> None:
    pass


@pytest.fixture(scope="module")
def adapters(demo_model_cache, tmp_path_factory):
    """Two small demo adapters trained with different seeds."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMLAB_CACHE_DIR", str(demo_model_cache))
        root = tmp_path_factory.mktemp("adapters")
        runs = []
        for seed in (1, 2):
            run_finetune(finetune_demo(out=str(root / f"ft{seed}"), epochs=2, seed=seed), log=quiet)
            runs.append(root / f"ft{seed}")
        yield runs


def test_squad_demo_scores_every_question_and_a_predictions_file_scores_the_same(tmp_path):
    out = tmp_path / "sq"
    assert main(["squad", "--demo", "--limit", "10", "--out", str(out)]) == 0
    summary, rows = read_json(out / "summary.json"), list(iter_jsonl(out / "results.jsonl"))
    assert summary["status"] == "completed" and summary["n"] == len(rows) == 10 and summary["kind"] == "squad"
    assert {"id", "prediction", "golds", "em", "f1"} <= set(rows[0])
    assert all("\n" not in r["prediction"] for r in rows)  # each answer ends at its first newline
    predictions = {r["id"]: r["prediction"] for r in rows}
    (tmp_path / "preds.json").write_text(json.dumps(predictions), encoding="utf-8")
    again = tmp_path / "again"
    assert main(["squad", "--demo", "--limit", "10", "--predictions", str(tmp_path / "preds.json"), "--out", str(again)]) == 0
    scored = read_json(again / "summary.json")
    assert (scored["exact_match"], scored["f1"]) == (summary["exact_match"], summary["f1"])


def test_a_right_predictions_file_scores_100(tmp_path):
    from core.scoring.squad import load_squad
    from core.squad.config import DEMO_SQUAD

    gold = {e["id"]: e["answers"][0] for e in load_squad(DEMO_SQUAD)}
    (tmp_path / "p.json").write_text(json.dumps(gold), encoding="utf-8")
    assert main(["squad", "--demo", "--predictions", str(tmp_path / "p.json"), "--out", str(tmp_path / "r")]) == 0
    summary = read_json(tmp_path / "r" / "summary.json")
    assert summary["exact_match"] == summary["f1"] == 100.0 and summary["n"] == len(gold)


@pytest.mark.parametrize("predictions,message", [
    ({"demo-001": "x"}, "lacks answers for 40 of 41 questions: demo-002"),
    ({"other-1": "x", "other-2": "y"}, "answers other questions"),
    ([1, 2], "JSON object"),
])
def test_bad_predictions_files_are_one_line(tmp_path, capsys, predictions, message):
    (tmp_path / "p.json").write_text(json.dumps(predictions), encoding="utf-8")
    assert main(["squad", "--demo", "--predictions", str(tmp_path / "p.json"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not (tmp_path / "r").exists()


def test_malformed_squad_json_is_one_line(tmp_path, capsys):
    (tmp_path / "bad.json").write_text('{"version": "1.1", "data": [{"title": "t", "paragraphs": [{"qas": []}]}]}')
    assert main(["squad", "--data", str(tmp_path / "bad.json"), "--model", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "context" in capsys.readouterr().err


def test_squad_baseline_reports_retention(adapters, tmp_path):
    out = tmp_path / "ret"
    assert main(["squad", "--demo", "--limit", "8", "--adapter", str(adapters[0]), "--baseline", "--out", str(out)]) == 0
    summary = read_json(out / "summary.json")
    assert set(summary["squad_before"]) == {"exact_match", "f1", "n"} and summary["squad_after"]["n"] == 8
    assert set(summary["retention"]) == {"exact_match", "f1"} and "retention_ok" in summary
    assert len(list(iter_jsonl(out / "results_before.jsonl"))) == 8


def test_math_demo_judges_by_the_last_number_and_gives_the_contest_score(adapters, tmp_path):
    out = tmp_path / "m"
    assert main(["math", "--demo", "--limit", "12", "--adapter", str(adapters[0]), "--out", str(out)]) == 0
    summary, rows = read_json(out / "summary.json"), list(iter_jsonl(out / "results.jsonl"))
    assert summary["n"] == len(rows) == 12 and {"id", "reply", "pred", "gold", "correct"} <= set(rows[0])
    ratio = read_json(adapters[0] / "summary.json")["trainable_ratio"]
    assert summary["trainable_ratio"] == pytest.approx(ratio)  # from file headers, equal to the trainer's own count
    assert summary["score"] == pytest.approx((1 - ratio) * 0.3 + summary["accuracy"] * 0.7, abs=1e-6)


def test_math_predictions_right_and_wrong(tmp_path):
    from core.math.config import DEMO_MATH
    from core.qa.math import load_math

    questions = load_math(DEMO_MATH)[:4]
    replies = {questions[0].question_id: f"It is {questions[0].gold}.", questions[1].question_id: "I think 0.5",
               questions[2].question_id: questions[2].solution, questions[3].question_id: "no idea"}
    (tmp_path / "r.json").write_text(json.dumps(replies, ensure_ascii=False), encoding="utf-8")
    assert main(["math", "--demo", "--limit", "4", "--predictions", str(tmp_path / "r.json"), "--out", str(tmp_path / "o")]) == 0
    rows = {r["id"]: r for r in iter_jsonl(tmp_path / "o" / "results.jsonl")}
    assert [rows[q.question_id]["correct"] for q in questions] == [True, questions[1].gold == "0.5", True, False]
    assert rows[questions[3].question_id]["pred"] is None
    assert read_json(tmp_path / "o" / "summary.json")["accuracy"] == pytest.approx(
        sum(r["correct"] for r in rows.values()) / 4)


def test_several_adapters_share_one_base_and_vote(adapters, tmp_path):
    args = ["eval", "--demo", "--subject", "all", "--limit", "8", "--max-new-tokens", "6"]
    assert main([*args, "--adapter", str(adapters[0]), "--adapter", str(adapters[1]), "--out", str(tmp_path / "two")]) == 0
    runs = sorted(p for p in (tmp_path / "two").iterdir() if p.name.startswith("adapter-"))
    assert len(runs) == 2 and (tmp_path / "two" / "vote" / "summary.json").exists()
    for run, adapter in zip(runs, adapters):  # switching adapters on one base answers as loading each alone
        alone = tmp_path / f"alone-{adapter.name}"
        assert main([*args, "--adapter", str(adapter), "--out", str(alone)]) == 0
        outputs = lambda r: {row["index"]: row["output"] for row in iter_jsonl(r / "results.jsonl")}  # noqa: E731
        assert outputs(run) == outputs(alone)
    vote = read_json(tmp_path / "two" / "vote" / "summary.json")
    assert vote["kind"] == "vote" and [r["run_dir"] for r in vote["runs"]] == [str(r) for r in runs]
    rows = list(iter_jsonl(tmp_path / "two" / "vote" / "results.jsonl"))
    assert len(rows) == 8 and all(sum(r["votes"].values()) == sum(p is not None for p in r["preds"]) for r in rows)


def test_vote_refuses_runs_of_other_questions(tmp_path, capsys):
    base = ["eval", "--demo", "--max-new-tokens", "4"]
    assert main([*base, "--limit", "4", "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--limit", "5", "--out", str(tmp_path / "b")]) == 0
    capsys.readouterr()
    assert main(["vote", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "v")]) == 2
    assert "answers other questions" in capsys.readouterr().err and not (tmp_path / "v").exists()
    assert main(["vote", str(tmp_path / "a")]) == 2


def test_export_merges_into_a_plain_model_with_the_same_logits(adapters, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from core.lm import demo as demo_mod

    out = tmp_path / "merged"
    assert main(["export", "--demo", "--adapter", str(adapters[0]), "--out", str(out)]) == 0
    assert (out / "model.safetensors").exists() and (out / "tokenizer.json").exists()
    assert not (out / "adapter_config.json").exists()  # a plain model: no peft needed
    base_dir = demo_mod.ensure_demo_model()
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), str(adapters[0] / "adapter")).eval()
    merged = AutoModelForCausalLM.from_pretrained(out).eval()
    ids = torch.randint(0, 50000, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, tuned(ids).logits, atol=1e-5, rtol=1e-5)
    assert main(["export", "--demo", "--adapter", str(adapters[0]), "--out", str(out)]) == 2  # nothing overwritten
