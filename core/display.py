"""What a headless run shows at the terminal, the same for every kind: progress bars with rate and ETA
(tqdm) driven by the run's own events, its log lines, and the lines it says at the end.

Bars and log lines go to stderr; what a run says (ctx.say: results, where the report is) goes to
stdout, so `llmlab eval ... > result.txt` keeps the answer and drops the chatter.
"""

from __future__ import annotations

import sys

from core.runlog import Event, Log, Loss, Plan, Progress, Resume, Start


class TerminalDisplay:
    """One progress bar at a time: training steps (after `plan`), or questions answered (per test phase)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.bar = None
        self.bar_name = ""

    def hooks(self) -> dict:
        """What run_job takes from a display."""
        return {"progress": self.on_event, "log": self.say, "on_step": self.on_step}

    def _show(self, name: str, total: int | None, unit: str):
        from tqdm import tqdm

        if self.bar_name != name or self.bar is None:
            self.close()
            self.bar = tqdm(total=total, unit=unit, desc=name, dynamic_ncols=True, file=sys.stderr)
            self.bar_name = name
        elif total is not None and self.bar.total != total:
            self.bar.total = total
        return self.bar

    def write(self, line: str, err: bool = True) -> None:
        """A line above the bar (stderr), or a result line (stdout)."""
        from tqdm import tqdm

        tqdm.write(line, file=sys.stderr if err else sys.stdout)

    def say(self, line: str) -> None:
        self.write(line, err=False)

    def on_step(self, step: int, total: int) -> None:
        bar = self._show(self.kind, total, "step")
        bar.update(step - bar.n)

    def on_event(self, event: Event) -> None:
        if isinstance(event, Start):
            self.write(f"run folder: {event.run_dir}")
            if event.total:
                self._show(self.kind, event.total, "q")
        elif isinstance(event, Plan):
            self._show(self.kind, event.total_steps, "step")
        elif isinstance(event, Loss):
            bar = self._show(self.kind, event.total_steps or (self.bar.total if self.bar else None), "step")
            bar.update(event.step - bar.n)
            bar.set_postfix(loss=event.loss, refresh=False)
        elif isinstance(event, Resume) and event.reused is not None:
            bar = self._show(self.kind, event.total, "q")
            self.write(f"llmlab: resuming: {event.reused} of {event.total} questions already answered")
            bar.update(event.reused - bar.n)
        elif isinstance(event, Progress):
            name = f"{self.kind} {event.phase}" if event.phase else self.kind
            bar = self._show(name, event.total, "q")
            bar.update(event.done - bar.n)
            postfix = {k: v for k, v in (("tok_s", event.tokens_per_s), ("bs", event.batch_size)) if v is not None}
            if postfix:
                bar.set_postfix(postfix, refresh=False)
        elif isinstance(event, Log):
            self.write(f"llmlab: {event.message}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar, self.bar_name = None, ""
