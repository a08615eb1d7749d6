"""The scoring conventions of logprob mode (--letters): what each one scores, checked by hand on the demo model."""

from __future__ import annotations

import math

import pytest
import torch

from core.lm.engine import score_choices
from core.mmmlu import LETTERS

pytestmark = pytest.mark.usefixtures("shared_demo_model")


@pytest.fixture(scope="module")
def demo(demo_model_cache):
    from transformers import AutoModelForCausalLM

    from core.eval.config import DEMO_DATA
    from core.lm import demo as demo_mod
    from core.lm.loading import load_tokenizer
    from core.mmmlu import load_csv, select_questions

    folder = demo_model_cache / demo_mod.DEMO_MODEL_NAME
    questions, _ = select_questions(load_csv(DEMO_DATA), "all", 6)
    return AutoModelForCausalLM.from_pretrained(folder).eval(), load_tokenizer(folder), [q.prompt for q in questions]


def next_logprobs(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return torch.log_softmax(model(torch.tensor([ids])).logits[0, -1].float(), -1)


def test_bare_spaced_and_both_score_the_token_after_the_prompt(demo):
    model, tok, prompts = demo
    scored = {name: score_choices(model, tok, prompts, batch_size=3, letters=name)[0] for name in ("bare", "spaced", "both")}
    for i, prompt in enumerate(prompts):
        assert prompt.endswith(": ")
        logprobs = next_logprobs(model, tok(prompt)["input_ids"])
        for letter in LETTERS:
            bare = float(logprobs[tok.encode(letter)[0]])
            spaced = float(logprobs[tok.encode(" " + letter)[0]])
            assert scored["bare"][i][letter] == pytest.approx(bare, abs=1e-4)
            assert scored["spaced"][i][letter] == pytest.approx(spaced, abs=1e-4)
            assert scored["both"][i][letter] == pytest.approx(math.log(math.exp(bare) + math.exp(spaced)), abs=1e-4)


def test_lm_eval_scores_a_spaced_letter_after_the_prompt_less_its_trailing_space(demo):
    model, tok, prompts = demo
    scored, _ = score_choices(model, tok, prompts, batch_size=4, letters="lm-eval")
    for i, prompt in enumerate(prompts):
        context = tok(prompt.rstrip())["input_ids"]
        logprobs = next_logprobs(model, context)
        for letter in LETTERS:
            whole = tok(prompt.rstrip() + " " + letter)["input_ids"]
            assert whole[:len(context)] == context and len(whole) == len(context) + 1  # " A" is one token after ":"
            assert scored[i][letter] == pytest.approx(float(logprobs[whole[-1]]), abs=1e-4)


def test_eval_records_the_convention_and_defaults_to_both(tmp_path):
    from core.cli import main
    from core.runs import iter_jsonl, read_json

    assert main(["eval", "--demo", "--mode", "logprob", "--limit", "4", "--out", str(tmp_path / "ev")]) == 0
    summary = read_json(tmp_path / "ev" / "summary.json")
    assert summary["letters"] == "both" and read_json(tmp_path / "ev" / "config.json")["settings"]["letters"] == "both"
    assert all(set(r["logprobs"]) == set(LETTERS) for r in iter_jsonl(tmp_path / "ev" / "results.jsonl"))
