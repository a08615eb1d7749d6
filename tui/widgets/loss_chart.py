"""A plotext loss chart that collects points at any rate and redraws at most twice a second."""

from __future__ import annotations

from textual_plotext import PlotextPlot

# Distinct in 16-colour terminals too; one per overlaid run.
COLORS = ("cyan", "magenta", "green", "yellow")
MAX_POINTS = 400  # a line of more points than the chart has columns only costs time


def thin(points: list[tuple[float, float]], limit: int = MAX_POINTS) -> list[tuple[float, float]]:
    """At most `limit` points: the mean of each of `limit` equal slices, keeping the last point exact."""
    if len(points) <= limit:
        return points
    size = len(points) / limit
    out = []
    for i in range(limit):
        chunk = points[int(i * size) : int((i + 1) * size)] or points[-1:]
        out.append((sum(p[0] for p in chunk) / len(chunk), sum(p[1] for p in chunk) / len(chunk)))
    out[-1] = points[-1]
    return out


def int_ticks(low: float, high: float, count: int = 5) -> list[int]:
    """Up to `count` whole-number ticks from low to high (steps are integers; plotext would print 19.8)."""
    low, high = int(low), int(high)
    if high - low < count:
        return list(range(low, high + 1))
    raw = (high - low) / count
    magnitude = 10 ** (len(str(int(raw))) - 1)
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = -(-low // step) * step
    ticks = list(range(first, high + 1, step))
    return sorted({low, *ticks, high}) if len(ticks) < 2 else ticks


class LossChart(PlotextPlot):
    """Training loss by step as lines and eval loss as points, for one run or several overlaid.

    `add_*` only records points; a timer replots when something changed, so 10,000 events a
    second still cost two redraws a second.
    """

    def __init__(self, *, empty_text: str = "waiting for the first loss", refresh_seconds: float = 0.5,
                 id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.empty_text = empty_text
        self.refresh_seconds = refresh_seconds
        self.train: dict[str, list[tuple[float, float]]] = {}
        self.evals: dict[str, list[tuple[float, float]]] = {}
        self.dirty = True
        self.replots = 0  # how many times the figure was rebuilt; tests read it

    def on_mount(self) -> None:
        self.set_interval(self.refresh_seconds, self.flush)
        self.flush()

    def clear(self) -> None:
        self.train.clear()
        self.evals.clear()
        self.dirty = True

    def add_loss(self, points: list[tuple[float, float]], series: str = "train") -> None:
        if points:
            self.train.setdefault(series, []).extend(points)
            self.dirty = True

    def add_eval(self, points: list[tuple[float, float]], series: str = "eval") -> None:
        if points:
            self.evals.setdefault(series, []).extend(points)
            self.dirty = True

    def flush(self) -> None:
        """Rebuild the figure if points arrived since the last time."""
        if not self.dirty:
            return
        self.dirty = False
        self.replots += 1
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.xlabel("step")
        if not any(self.train.values()) and not any(self.evals.values()):
            plt.title(self.empty_text)
        steps = [p[0] for points in (*self.train.values(), *self.evals.values()) for p in points]
        if steps:
            plt.xticks(int_ticks(min(steps), max(steps)))
        for i, (name, points) in enumerate(self.train.items()):
            shown = thin(points)
            plt.plot([p[0] for p in shown], [p[1] for p in shown], label=name, marker="braille",
                     color=COLORS[i % len(COLORS)])
        for i, (name, points) in enumerate(self.evals.items()):
            plt.scatter([p[0] for p in points], [p[1] for p in points], label=name, marker="dot",
                        color=COLORS[(i + 1) % len(COLORS)] if len(self.train) <= 1 else COLORS[i % len(COLORS)])
        self.refresh()
