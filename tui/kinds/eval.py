"""MMMLU evaluation in the app: the answers as they finish, running accuracy, the A/B/C/D/none distribution."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.app import ComposeResult

from core.runlog import Event, Progress
from tui import format as fmt
from tui.kinds.answers import AnswersProgress, AnswersView
from tui.widgets.answer_bars import ANSWERS, AnswerBars


def answer_of(row: dict) -> str:
    pred = row.get("pred")
    return pred if pred in ANSWERS[:4] else "none"


@dataclass
class EvalProgress(AnswersProgress):
    tokens_per_s: float | None = None
    batch_size: int | str | None = None
    answer_counts: dict = field(default_factory=lambda: dict.fromkeys(ANSWERS, 0))

    def apply_event(self, event: Event) -> None:
        super().apply_event(event)
        if isinstance(event, Progress):
            self.tokens_per_s = event.tokens_per_s if event.tokens_per_s is not None else self.tokens_per_s
            self.batch_size = event.batch_size if event.batch_size is not None else self.batch_size

    def count(self, row: dict) -> None:
        super().count(row)
        self.answer_counts[answer_of(row)] += 1

    def forget(self, row: dict) -> None:
        super().forget(row)
        self.answer_counts[answer_of(row)] -= 1

    def stats_parts(self) -> list[str]:
        parts = super().stats_parts()
        parts.insert(2, fmt.rate(self.tokens_per_s))
        return parts


class EvalView(AnswersView):
    """The answer distribution bar over the results table."""

    def compose(self) -> ComposeResult:
        yield AnswerBars(id="answers")
        yield from super().compose()

    def reset(self) -> None:
        super().reset()
        self.query_one(AnswerBars).update(dict.fromkeys(ANSWERS, 0))

    def show(self, progress: EvalProgress) -> None:
        super().show(progress)
        self.query_one(AnswerBars).update(progress.answer_counts)


progress_class = EvalProgress
view_class = EvalView
