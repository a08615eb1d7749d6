"""How an exam question becomes a prompt and a target, and how a reply is read back as a letter.

`mmmlu` (default): the prompt is llmlab eval's seed prompt character for character and the target
is "{letter}) {option text}", so an adapter trained here answers `llmlab eval` the way it learned.
`alpaca`: seed 001's instruction / input / output form ("The right option is A.…") inside the
usual Alpaca prompt layout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from core.finetune.data import ExamQuestion
from core.mmmlu import build_prompt, extract_answer

ALPACA_LAYOUT = ("Below is an instruction that describes a task, paired with an input that provides further context. "
                 "Write a response that appropriately completes the request.\n\n"
                 "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n")
_RIGHT_OPTION = re.compile(r"right option is\s*([A-D])")


@dataclass(frozen=True)
class Template:
    name: str
    prompt: Callable[[ExamQuestion], str]
    target: Callable[[ExamQuestion], str]
    answer: Callable[[str], str | None]   # the letter a reply gives, or None


def _mmmlu_prompt(q: ExamQuestion) -> str:
    return build_prompt({"Question": q.question, **q.options})


def _alpaca_prompt(q: ExamQuestion) -> str:
    subject = q.subject.replace("_", " ")
    instruction = (f"Here is a question about {subject}, the correct answer is one of the options A/B/C/D. "
                   f"Please select the correct option and answer the question with 'The right option is'.")
    body = f"Question: {q.question} \n" + "\n".join(f"{k}.{v}" for k, v in q.options.items())
    return ALPACA_LAYOUT.format(instruction=instruction, input=body)


def _alpaca_answer(text: str) -> str | None:
    match = _RIGHT_OPTION.search(text)
    return match.group(1) if match else extract_answer(text)


TEMPLATES = {
    "mmmlu": Template("mmmlu", _mmmlu_prompt, lambda q: f"{q.gold}) {q.options[q.gold]}", extract_answer),
    "alpaca": Template("alpaca", _alpaca_prompt, lambda q: f"The right option is {q.gold}.{q.options[q.gold]}", _alpaca_answer),
}
