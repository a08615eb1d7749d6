"""The one path for what a question-answering run writes: eval, squad, math and vote, and fine-tuning's tests.

`AnswerSheet` takes each judged row as it comes: one line in the run's results file (written the
moment the row is judged, so the app's table fills live), a `progress` event, and the tallies the
summary needs. Every row carries `qid`, its question's identity across runs (core.runlog's
`question_key`), so votes, comparisons and resumes agree on which rows are the same question.

`qa_summary` gives the figures every such run has (accuracy over the rows that carry `correct`, n,
total, and whether every question was answered), and `qa_report` the report's frame: the title,
the demo warning, the status, a figures table that ends with the total time, and notes below it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from core.lifecycle import Job
from core.runlog import Progress
from core.runs import RESULTS

DEMO_NOTE = "> Demo run: bundled questions and a tiny random-weight model; the scores mean nothing."


class AnswerSheet:
    """A run's answered questions: written one row at a time, with a progress event after each."""

    def __init__(self, ctx, total: int, name: str = RESULTS, phase: str | None = None, rows: Iterable[dict] = ()) -> None:
        """`rows`: rows a resumed run keeps (already in the file); they count towards `done` but are not written again."""
        self.ctx, self.total, self.phase = ctx, total, phase
        self.path = ctx.run_dir / name
        self.rows: list[dict] = list(rows)
        self._out = None

    def __enter__(self) -> "AnswerSheet":
        self._out = self.ctx.writer(self.path)  # on a rank other than 0, a writer that writes nothing
        return self

    def __exit__(self, *exc: object) -> None:
        self._out.close()

    def add(self, row: dict, **progress) -> dict:
        """Write one judged row (it must carry `qid`) and say how far the run is; `progress`: extra event fields."""
        if "qid" not in row:
            raise ValueError("a results row needs its question's identity, `qid`")
        self._out.write(row)
        self.rows.append(row)
        judged = [r["correct"] for r in self.rows if "correct" in r]
        self.ctx.emit(Progress(done=len(self.rows), total=self.total, correct=sum(map(bool, judged)) if judged else None,
                               phase=self.phase, **progress))
        return row


def qa_summary(rows: list[dict], total: int, judged: bool = True) -> dict:
    """The figures every question-answering run reports; `status` says whether every question was answered.

    `judged`: the rows are right or wrong (`correct`), so the figures include accuracy and correct.
    """
    figures = {"n": len(rows), "total": total, "status": "completed" if len(rows) == total else "stopped"}
    if judged:
        right = [bool(r.get("correct")) for r in rows]
        figures.update(accuracy=sum(right) / len(right) if right else None, correct=sum(right))
    return figures


def qa_report(heading: str, summary: dict, figures: list[tuple[str, str]], notes: list[str] = (),
              demo_note: str = DEMO_NOTE) -> list[str]:
    """report.md's frame, as lines: heading, demo warning, status, a figures table ending with the total time, notes."""
    s = summary
    lines = [f"# {heading}", ""]
    if s.get("demo"):
        lines += [demo_note, ""]
    lines += [f"Status: **{s['status']}**" + (f" ({s['error']})" if s.get("error") else ""), ""]
    if figures:
        lines += ["| | |", "|---|---|", *[f"| {label} | {value} |" for label, value in figures]]
        if isinstance(s.get("total_seconds"), (int, float)):
            lines.append(f"| Total time | {s['total_seconds']:.1f} s |")
        lines.append("")
        lines += [*notes, *([""] if notes else [])]
    return lines


class QuestionJob(Job):
    """What every job that answers a list of questions shares: its start, end and summary fields.

    A subclass sets `self.total` (the questions it will answer) in prepare().
    """

    total: int = 0
    stop_message = "stopping at the next generation step; answered questions are kept"

    def start_fields(self) -> dict:
        return {"total": self.total, "demo": getattr(self.config, "demo", None)}

    def end_fields(self, summary: dict) -> dict:
        return {"accuracy": summary.get("accuracy"), "n": summary.get("n")}

    def figures_line(self, summary: dict) -> str | None:
        """The run's figures in one line for the terminal (None: nothing to say)."""
        return None

    def closing_line(self, summary: dict, run_dir: Path) -> str | None:
        """The figures, and when the run did not answer everything, that it stopped and how far it got."""
        line = self.figures_line(summary)
        if summary.get("status") not in ("completed", "failed"):
            done = f"{summary.get('status')} after {summary.get('n', 0)} of {summary.get('total', self.total)} questions"
            line = f"{done}: {line}" if line else done
        return f"{line}; report: {run_dir / 'report.md'}" if line else None

    def finish(self, ctx, summary: dict) -> None:
        summary.setdefault("total", self.total)
        summary.setdefault("demo", getattr(self.config, "demo", None))
        if getattr(self.config, "data", None):
            summary.setdefault("data", str(self.config.data))


def occurrence_ids(values: list[str]) -> list[str]:
    """`qid`s from per-question values that may repeat (a CSV listing one row twice): `v`, then `v#2`, `v#3`."""
    seen: dict[str, int] = {}
    out = []
    for value in values:
        seen[value] = seen.get(value, 0) + 1
        out.append(value if seen[value] == 1 else f"{value}#{seen[value]}")
    return out


def accuracy_text(summary: dict) -> str:
    return f"**{summary['accuracy']:.1%}** ({summary['correct']}/{summary['n']})"


__all__ = ["AnswerSheet", "QuestionJob", "qa_summary", "qa_report", "accuracy_text", "occurrence_ids", "DEMO_NOTE"]
