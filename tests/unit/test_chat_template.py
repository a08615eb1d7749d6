"""Instruction models through their own chat template: rendering, assistant-only loss, a chat fine-tune end to end, bad input."""

from __future__ import annotations

import pytest

from core.cli import main
from core.finetune.config import demo_config
from core.finetune.run import run_finetune
from core.runs import iter_jsonl, read_json

pytestmark = pytest.mark.xdist_group("instruct-model")  # one worker builds the module's model once

# Qwen2.5-Instruct's layout, written for the test: a system turn, then <|im_start|>role\n...<|im_end|>\n per message.
CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def instruct_model(tmp_path_factory):
    """A tiny random Qwen2 whose tokenizer has <|im_start|>, <|im_end|> and a chat template; <|im_end|> ends a reply."""
    from core.lm.demo import build_tiny_qwen2, gpt2_tokenizer

    tokenizer = gpt2_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tokenizer.chat_template = CHAT_TEMPLATE
    model = build_tiny_qwen2(tokenizer, seed=3)
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    model.generation_config.eos_token_id = [end, tokenizer.eos_token_id]
    folder = tmp_path_factory.mktemp("instruct") / "model"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_user_turn_is_what_apply_chat_template_renders(instruct_model):
    from core.lm.chat import user_turn
    from core.lm.loading import load_tokenizer

    tokenizer = load_tokenizer(instruct_model)
    messages = [{"role": "user", "content": "问题: 1+1?\nA) 2\n请你给出答案（只输出一个字母）: "}]
    text = user_turn(tokenizer, messages[0]["content"])
    assert text == tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    expected = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, return_dict=True)
    assert tokenizer(text, add_special_tokens=True)["input_ids"] == expected["input_ids"]  # what the engine feeds


def test_chat_examples_carry_loss_on_the_assistant_tokens_only(instruct_model):
    from core.finetune.train import encode
    from core.lm.loading import load_tokenizer

    tokenizer = load_tokenizer(instruct_model)
    rows = [{"user": "问题: 2+2?\nA) 4\nB) 5", "target": "A) 4"}]
    [example], cut = encode(tokenizer, rows, max_length=256, chat=True)
    whole = tokenizer.apply_chat_template([{"role": "user", "content": rows[0]["user"]},
                                           {"role": "assistant", "content": "A) 4"}], tokenize=False)
    assert whole.startswith(tokenizer.decode(example.input_ids)) and cut == 0
    asked = tokenizer.apply_chat_template([{"role": "user", "content": rows[0]["user"]}], tokenize=False,
                                          add_generation_prompt=True)
    n_prompt = len(tokenizer(asked, add_special_tokens=False)["input_ids"])
    assert example.labels[:n_prompt] == [-100] * n_prompt
    assert tokenizer.decode([t for t in example.labels if t != -100]) == "A) 4<|im_end|>"


def test_a_chat_template_fine_tune_runs_end_to_end_and_keeps_the_rendered_prompt(instruct_model, tmp_path):
    out = tmp_path / "ft"
    cfg = demo_config(model=str(instruct_model), demo=False, template="chat", epochs=2, val_per_subject=2,
                      test_per_subject=2, shuffle_copies=1, test_max_new_tokens=6, max_length=192, out=str(out))
    summary = run_finetune(cfg, log=lambda line: None)
    assert summary["status"] == "completed" and summary["template"] == "chat"
    losses = [e["loss"] for e in iter_jsonl(out / "events.jsonl") if e["type"] == "loss"]
    assert losses[-1] < losses[0]
    row = next(iter_jsonl(out / "data" / "test.jsonl"))
    assert row["prompt"].startswith("<|im_start|>system\n") and row["prompt"].endswith("<|im_start|>assistant\n")
    assert row["user"].startswith("问题: ") and row["user"] in row["prompt"]
    assert summary["first_prompt"] == row["prompt"]
    assert next(iter_jsonl(out / "results.jsonl"))["prompt"].startswith("<|im_start|>")
    # the adapter answers eval --chat the way it learned: through the same template
    ev = tmp_path / "ev"
    assert main(["eval", "--model", str(instruct_model), "--adapter", str(out), "--chat", "--data",
                 str(__import__("core.eval.config", fromlist=["DEMO_DATA"]).DEMO_DATA), "--subject", "all", "--limit", "3",
                 "--max-new-tokens", "4", "--out", str(ev)]) == 0
    evaluated = read_json(ev / "summary.json")
    assert evaluated["chat"] is True and evaluated["first_prompt"].startswith("<|im_start|>system")


def test_chat_without_a_template_is_one_line_and_leaves_nothing(tmp_path, capsys, shared_demo_model):
    assert main(["finetune", "--demo", "--template", "chat", "--out", str(tmp_path / "ft")]) == 2
    err = capsys.readouterr().err
    assert "--template chat: the tokenizer in" in err and "has no chat template" in err
    assert err.count("llmlab: error:") == 1 and "Traceback" not in err and not (tmp_path / "ft").exists()
    assert main(["eval", "--demo", "--chat", "--out", str(tmp_path / "ev")]) == 2
    assert "--chat: the tokenizer in" in capsys.readouterr().err and not (tmp_path / "ev").exists()
