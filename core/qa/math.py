"""Math questions and how a reply to one is judged: by the value of its last number (seeds 003).

Questions come from JSON Lines with `problem`/`solution` (seed 003's form) or `question`/`answer`;
ids from an `id` field or the line number. Shared by `llmlab math` and by fine-tuning on math data,
so a tuned model is judged the same way wherever its accuracy is reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from core.errors import UsageError
from core.scoring.numbers import answer_of_solution, last_number, same_number
from core.textfile import read_text

PROMPT = "Question: {problem}\nAnswer:"


@dataclass(frozen=True)
class MathQuestion:
    question_id: str
    subject: str        # one group, so the fine-tuning splits' per-subject quotas apply to math too
    question: str
    solution: str
    gold: str           # the solution's answer (its last number), as text


def load_math(path: str | Path) -> list[MathQuestion]:
    """Every question of a math JSONL, or one UsageError naming the bad line."""
    path = Path(path).expanduser()
    text = read_text(path, "math data", "pass a .jsonl with problem/solution (or question/answer) rows")
    out, seen = [], set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise UsageError(f"{path.name} line {number} is not JSON ({exc}); one object per line") from None
        if not isinstance(row, dict):
            raise UsageError(f"{path.name} line {number} is not a JSON object")
        question = row.get("problem", row.get("question"))
        solution = row.get("solution", row.get("answer"))
        if not isinstance(question, str) or solution is None:
            raise UsageError(f"{path.name} line {number} needs problem and solution (or question and answer)")
        gold = answer_of_solution(str(solution))
        if gold is None:
            raise UsageError(f"{path.name} line {number}: the solution {str(solution)[:60]!r} holds no number to score against")
        qid = str(row.get("id", number))
        if qid in seen:
            raise UsageError(f"{path.name} line {number}: duplicate id {qid!r}")
        seen.add(qid)
        out.append(MathQuestion(qid, "math", question, str(solution), plain_number(gold)))
    if not out:
        raise UsageError(f"{path} holds no questions")
    return out


def plain_number(value) -> str:
    """A number as short exact text: 3/4 -> 0.75, 12 -> 12, 1/3 -> 1/3 (not a rounded decimal)."""
    from fractions import Fraction

    if isinstance(value, Fraction):
        if value.denominator == 1:
            return str(value.numerator)
        decimal = float(value)
        return repr(decimal) if Fraction(repr(decimal)) == value else str(value)
    return repr(value)


def contest_score(trainable_ratio: float, accuracy: float) -> float:
    """Seed 003's ranking: a low trainable share and a high accuracy, weighted 0.3 and 0.7."""
    return (1 - trainable_ratio) * 0.3 + accuracy * 0.7


def judge(question: MathQuestion, reply: str, tolerance: float) -> dict:
    """One results.jsonl row: the reply's last number against the solution's (kept as exact text in `gold`)."""
    pred = last_number(reply)
    return {"qid": question.question_id, "id": question.question_id, "question": question.question, "reply": reply,
            "pred": None if pred is None else plain_number(pred), "gold": question.gold,
            "correct": same_number(pred, last_number(question.gold), tolerance)}
