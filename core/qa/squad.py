"""SQuAD answers from a model (batched greedy through the eval engine, each ending at its first newline) and their scores.

Shared by `llmlab squad` and `llmlab finetune --retain-check`, so retention is measured the same
way wherever it is reported.
"""

from __future__ import annotations

import time
from typing import Callable

from core.scoring.squad import score_predictions

# lm-evaluation-harness's SQuAD prompt layout; --prompt takes another with {context}, {question} (and {title}).
PROMPT = "Context: {context}\nQuestion: {question}\nAnswer:"


def squad_prompt(template: str, example: dict) -> str:
    return template.format(context=example["context"], question=example["question"], title=example.get("title") or "")


def first_line(reply: str) -> str:
    """The answer part of a reply: its first line, trimmed (the model may go on to a next question)."""
    return reply.strip().split("\n", 1)[0].strip()


def answer_squad(loaded, examples: list[dict], template: str, max_new_tokens: int, batch_size,
                 on_row: Callable[[dict], None] | None = None, should_stop=None, log=None, chat: bool = False) -> dict:
    """{"exact_match", "f1", "n", "rows", "seconds", "first_prompt"}: every question answered by `loaded` and scored
    (official v1.1).

    `on_row(row)` gets each scored row the moment its answer is done. Rows are in dataset order. `chat`: each
    prompt is the user turn of the tokenizer's chat template (core/lm/chat.py).
    """
    from core.lm.batch_plan import auto_batch_size
    from core.lm.engine import prompt_lengths
    from core.lm.shard import generate_sharded
    from core.scoring.squad import best_over_golds, exact_match, f1

    prompts = [squad_prompt(template, e) for e in examples]
    if chat:
        from core.lm.chat import user_turns

        prompts = user_turns(loaded.tokenizer, prompts)
    if batch_size == "auto":
        batch_size = auto_batch_size(loaded.model, prompt_lengths(loaded.tokenizer, prompts), max_new_tokens)
    replies: dict[int, str] = {}
    start = time.perf_counter()

    def row_done(i, generation):
        example, answer = examples[i], first_line(generation.text)
        replies[i] = answer
        if on_row is not None:
            golds = example["answers"]
            on_row({"qid": str(example["id"]), "index": i, "id": example["id"], "question": example["question"],
                    "prediction": answer, "golds": golds,
                    "em": best_over_golds(exact_match, answer, golds), "f1": best_over_golds(f1, answer, golds),
                    "output": generation.text, "new_tokens": generation.new_tokens})

    generate_sharded(loaded.model, loaded.tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                     stop_when=lambda text: "\n" in text.strip(), greedy=True, on_row=row_done, should_stop=should_stop,
                     log=log)
    done = [e for i, e in enumerate(examples) if i in replies]
    scores = score_predictions(done, {examples[i]["id"]: text for i, text in replies.items()})
    scores["seconds"] = time.perf_counter() - start
    scores["first_prompt"] = prompts[0] if prompts else None
    return scores


def retention(before: dict, after: dict) -> dict:
    """after / before for EM and F1 (None where the base scored 0)."""
    return {key: (after[key] / before[key] if before[key] else None) for key in ("exact_match", "f1")}
