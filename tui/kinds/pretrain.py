"""Pretraining in the app: the training curve plus generation samples (seed 004's broken model showed only in them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Static

from core.runlog import Event, Sample
from tui.kinds.training import LossView, TrainingProgress


@dataclass
class PretrainProgress(TrainingProgress):
    samples: dict = field(default_factory=dict)  # (prompt, mode) -> the newest generation sample

    def apply_event(self, event: Event) -> None:
        super().apply_event(event)
        if isinstance(event, Sample) and event.prompt is not None:
            self.samples[(event.prompt, event.mode or "greedy")] = event.record()

    def outcome_figures(self) -> list[tuple[str, str]]:
        summary = self.summary or {}
        figures = super().outcome_figures()
        compression = summary.get("tokenizer_compression") or {}
        if compression:  # --tokenizer train: the new BPE against GPT-2's on held-out rows
            figures.append(("tokens/char", " vs ".join(f"{c['tokens_per_char']:.2f} {name.split(' (')[0]}"
                                                       for name, c in compression.items())))
        if summary.get("degenerate_samples"):
            figures.append(("degenerate samples", f"{summary['degenerate_samples']} of {len(summary.get('samples') or [])}"))
        return figures


class PretrainView(LossView):
    """The loss chart, and under it the newest greedy sample of each prompt (⚠ marks a degenerate one)."""

    def compose(self) -> ComposeResult:
        yield from super().compose()
        if self.live:
            yield Static(id="samples", classes="samples")

    def show(self, progress: PretrainProgress) -> None:
        super().show(progress)
        if self.live:
            self._show_samples(progress)

    def _show_samples(self, progress: PretrainProgress) -> None:
        panel = self.query_one("#samples", Static)
        greedy = [s for (prompt, mode), s in progress.samples.items() if mode == "greedy"]
        panel.display = bool(greedy)
        if not greedy:
            return
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, s in enumerate(greedy):
            if i:
                text.append("\n")
            text.append("⚠ " if s.get("degenerate") else "  ", style="bold yellow")
            text.append(str(s["prompt"]), style="bold").append(" " + " ".join(str(s.get("text", "")).split()), style="")
            text.append(f"  (step {s.get('step')})", style="dim")
        panel.update(text)


progress_class = PretrainProgress
view_class = PretrainView
