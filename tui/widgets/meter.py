"""A one-line gauge: label, bar, value and a sparkline of recent readings on a fixed 0..1 scale."""

from __future__ import annotations

from collections import deque

from rich.text import Text
from textual.widget import Widget

SPARK = " ▁▂▃▄▅▆▇█"


def level_style(fraction: float) -> str:
    """Green, then yellow above 75%, red above 90%: plain ANSI colours that survive any terminal."""
    return "red" if fraction >= 0.9 else "yellow" if fraction >= 0.75 else "green"


def sparkline(values: list[float], width: int) -> str:
    """The last `width` readings (0..1) as block characters; older readings scroll off the left."""
    shown = values[-width:] if width > 0 else []
    chars = [SPARK[min(len(SPARK) - 1, max(0, round(v * (len(SPARK) - 1))))] for v in shown]
    return " " * (width - len(chars)) + "".join(chars)


class Meter(Widget):
    """`label ████░░░░  text  ▁▂▄▆` in one line; the bar and the sparkline share the spare width."""

    DEFAULT_CSS = """
    Meter { height: 1; width: 1fr; }
    """

    def __init__(self, label: str, *, label_width: int = 7, text_width: int = 18, history: int = 120,
                 id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.label = label
        self.label_width = label_width
        self.text_width = text_width
        self.fraction: float | None = None
        self.text = "-"
        self.history: deque[float] = deque(maxlen=history)

    def update(self, fraction: float | None, text: str) -> None:
        """Show a new reading; None (unknown) shows an empty bar and adds nothing to the history."""
        if fraction is not None:
            fraction = min(1.0, max(0.0, fraction))
            self.history.append(fraction)
        self.fraction, self.text = fraction, text
        self.refresh()

    def render(self) -> Text:
        width = self.size.width
        spare = max(0, width - self.label_width - self.text_width - 2)
        bar_width = max(4, spare // 2) if spare >= 12 else spare
        spark_width = max(0, spare - bar_width)
        line = Text(no_wrap=True, overflow="crop")
        line.append(f"{self.label:<{self.label_width}}"[: self.label_width], style="bold")
        if self.fraction is None:
            line.append("·" * bar_width, style="dim")
        else:
            filled = round(self.fraction * bar_width)
            line.append("█" * filled, style=level_style(self.fraction))
            line.append("░" * (bar_width - filled), style="dim")
        line.append(f" {self.text:<{self.text_width}}"[: self.text_width + 1])
        if spark_width:
            line.append(" " + sparkline(list(self.history), spark_width - 1), style="cyan")
        return line
