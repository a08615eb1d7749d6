"""How often the model answered A, B, C, D or nothing, as one stacked bar with a legend."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

ANSWERS = ("A", "B", "C", "D", "none")  # the answer letters and "no answer", in the order they are drawn

# Letters are written inside their segments, so the bar reads without colour too.
STYLES = {"A": "black on cyan", "B": "black on magenta", "C": "black on green", "D": "black on yellow",
          "none": "white on red"}


def segments(counts: dict[str, int], width: int) -> list[tuple[str, int]]:
    """(answer, cells) per answer, cells summing to `width` (largest remainders get the spare cells)."""
    total = sum(counts.get(a, 0) for a in ANSWERS)
    if total <= 0 or width <= 0:
        return []
    exact = [(a, counts.get(a, 0) * width / total) for a in ANSWERS]
    cells = {a: int(x) for a, x in exact}
    spare = width - sum(cells.values())
    for a, x in sorted(exact, key=lambda ax: ax[1] - int(ax[1]), reverse=True)[:spare]:
        cells[a] += 1
    return [(a, cells[a]) for a in ANSWERS if cells[a]]


class AnswerBars(Widget):
    """Line 1: `AAAAABBBCCDDDD·` sized by count. Line 2: `A 12  B 8  C 4  D 7  none 1`."""

    DEFAULT_CSS = """
    AnswerBars { height: 2; width: 1fr; }
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.counts: dict[str, int] = dict.fromkeys(ANSWERS, 0)

    def update(self, counts: dict[str, int]) -> None:
        self.counts = dict(counts)
        self.refresh()

    def render(self) -> Text:
        width = self.size.width
        text = Text(no_wrap=True, overflow="crop")
        parts = segments(self.counts, width)
        if not parts:
            text.append("answers: none yet", style="dim")
        for answer, cells in parts:
            label = answer if answer != "none" else "-"
            text.append((label * cells)[:cells], style=STYLES[answer])
        text.append("\n")
        for answer in ANSWERS:
            text.append(f" {answer} ", style=STYLES[answer])
            text.append(f" {self.counts.get(answer, 0)}  ")
        return text
