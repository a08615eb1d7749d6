"""Every CPU core's load as one coloured block character each, so 128 cores still fit in two lines."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from tui.widgets.meter import SPARK, level_style


class CoreStrip(Widget):
    """`cores ▂▃█▁▁▅▇…`: one character per logical core, height grows to fit the width."""

    DEFAULT_CSS = """
    CoreStrip { height: auto; width: 1fr; }
    """

    def __init__(self, label: str = "cores", label_width: int = 7, id: str | None = None) -> None:
        super().__init__(id=id)
        self.label = label
        self.label_width = label_width
        self.percents: list[float] = []

    def update(self, percents: list[float]) -> None:
        resize = len(percents) != len(self.percents)
        self.percents = list(percents)
        self.refresh(layout=resize)

    def get_content_height(self, container, viewport, width: int) -> int:
        per_line = max(1, width - self.label_width)
        return max(1, -(-len(self.percents) // per_line))

    def render(self) -> Text:
        per_line = max(1, self.size.width - self.label_width)
        text = Text(no_wrap=False)
        for start in range(0, max(1, len(self.percents)), per_line):
            if start:
                text.append("\n")
            label = self.label if start == 0 else ""
            text.append(f"{label:<{self.label_width}}", style="bold")
            for value in self.percents[start : start + per_line]:
                fraction = min(1.0, max(0.0, value / 100))
                char = SPARK[max(1, round(fraction * (len(SPARK) - 1)))]
                text.append(char, style=level_style(fraction))
        return text
