"""How a question becomes a prompt and a target, and how a reply is judged.

`mmmlu` (default): the prompt is llmlab eval's seed prompt character for character and the target
is "{letter}) {option text}", so an adapter trained here answers `llmlab eval` the way it learned.
`alpaca`: seed 001's instruction / input / output form ("The right option is A.…") inside the
usual Alpaca prompt layout. `math` (seed 003): `llmlab math`'s prompt, the solution as target,
judged by the reply's last number.
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
    answer: Callable[[str], str | None]   # what a reply answers (a letter, a number as text), or None
    kind: str = "exam"                    # the questions it takes: "exam" (A-D) or "math"
    chat: bool = False                    # prompt and target are the user and assistant turns of the chat template

    def judge(self, reply: str, gold: str) -> tuple[str | None, bool]:
        """(the reply's answer, whether it is right)."""
        pred = self.answer(reply)
        if self.kind == "math":
            from core.scoring.numbers import last_number, same_number

            return pred, same_number(last_number(pred) if pred else None, last_number(gold))
        return pred, pred == gold


def _mmmlu_prompt(q: ExamQuestion) -> str:
    return build_prompt({"Question": q.stem, **q.options})


def _alpaca_prompt(q: ExamQuestion) -> str:
    subject = q.subject.replace("_", " ")
    instruction = (f"Here is a question about {subject}, the correct answer is one of the options A/B/C/D. "
                   f"Please select the correct option and answer the question with 'The right option is'.")
    body = f"Question: {q.stem} \n" + "\n".join(f"{k}.{v}" for k, v in q.options.items())
    return ALPACA_LAYOUT.format(instruction=instruction, input=body)


def _alpaca_answer(text: str) -> str | None:
    match = _RIGHT_OPTION.search(text)
    return match.group(1) if match else extract_answer(text)


def _math_prompt(q) -> str:
    from core.qa.math import PROMPT

    return PROMPT.format(problem=q.question)


def _math_answer(reply: str) -> str | None:
    from core.qa.math import plain_number
    from core.scoring.numbers import last_number

    value = last_number(reply.strip().split("\n", 1)[0])
    return None if value is None else plain_number(value)


TEMPLATES = {
    "mmmlu": Template("mmmlu", _mmmlu_prompt, lambda q: f"{q.gold}) {q.options[q.gold]}", extract_answer),
    "alpaca": Template("alpaca", _alpaca_prompt, lambda q: f"The right option is {q.gold}.{q.options[q.gold]}", _alpaca_answer),
    "math": Template("math", _math_prompt, lambda q: q.solution, _math_answer, kind="math"),
}


def template_for(name: str, questions: list):
    """The template `name` (auto: math for math questions, else mmmlu), checked against the questions' kind.

    chat: auto's prompt and target, rendered as a user turn and the assistant's answer by the tokenizer's own chat
    template (core/lm/chat.py) when the examples are encoded.
    """
    from dataclasses import replace

    from core.errors import UsageError
    from core.qa.math import MathQuestion

    math = bool(questions) and isinstance(questions[0], MathQuestion)
    if name == "chat":
        return replace(TEMPLATES["math" if math else "mmmlu"], name="chat", chat=True)
    template = TEMPLATES["math" if math else "mmmlu"] if name == "auto" else TEMPLATES[name]
    if (template.kind == "math") != math:
        raise UsageError(f"--template {name} is for {'math' if template.kind == 'math' else 'A-D exam'} questions, but the "
                         f"data holds {'math' if math else 'A-D exam'} questions; use --template auto")
    return template
