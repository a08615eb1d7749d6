"""Run folders read from disk for the Runs tab: one line per run, its series, and two runs compared."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.runs import JOB_LOG, iter_jsonl, read_json
from tui import format as fmt
from tui.jobs import EVENTS, RESULTS, SUMMARY, started_by, first_event, last_event
from tui.progress import EvalProgress, PretrainProgress


@dataclass
class RunInfo:
    """What the Runs table shows for one run folder."""

    path: Path
    kind: str
    status: str  # completed | failed | stopped | running | crashed
    started: float | None
    duration: float | None
    headline: str
    config: dict = field(default_factory=dict)
    summary: dict | None = None

    @property
    def name(self) -> str:
        return self.path.name


def headline(kind: str, summary: dict | None) -> str:
    """The one figure that says how a run went: final loss for pretraining, accuracy for evaluation."""
    if not summary:
        return ""
    if summary.get("status") == "failed" and summary.get("error"):
        error = " ".join(str(summary["error"]).split())
        return error if len(error) <= 40 else error[:39] + "…"
    if kind == "pretrain" and isinstance(summary.get("final_loss"), (int, float)):
        text = f"loss {summary['final_loss']:.3f}"
        if isinstance(summary.get("eval_loss"), (int, float)):
            text += f" (eval {summary['eval_loss']:.3f})"
        return text
    if kind == "eval" and isinstance(summary.get("accuracy"), (int, float)):
        n = summary.get("n")
        return f"acc {summary['accuracy'] * 100:.1f}%" + (f" of {n}" if n else "")
    return ""


def read_run(path: Path) -> RunInfo | None:
    """One run folder as a RunInfo, or None when the folder is not a run."""
    has_log = (path / JOB_LOG).exists()
    config = read_json(path / "config.json") or {}
    if not config and not has_log and not (path / EVENTS).exists():
        return None
    summary = read_json(path / SUMMARY)
    start = first_event(path / EVENTS)
    start = start if start and start.get("type") == "start" else None
    kind = (summary or {}).get("kind") or config.get("kind") or (start or {}).get("kind")
    if kind not in ("pretrain", "eval"):
        kind = "eval" if path.name.endswith("-eval") or "-eval-" in path.name else "pretrain"
    started = (start or {}).get("time")
    if started is None:
        try:
            started = (path / JOB_LOG if has_log else path).stat().st_mtime
        except OSError:
            started = None
    if summary:
        status = str(summary.get("status") or "completed")
        duration = summary.get("total_seconds")
    else:
        last = last_event(path / EVENTS)
        duration = (last or {}).get("elapsed")
        pid = (start or {}).get("pid")
        alive = isinstance(pid, int) and started_by(pid, started)
        status = "running" if alive else "crashed"
    return RunInfo(path=path, kind=kind, status=status, started=started, duration=duration,
                   headline=headline(kind, summary), config=config, summary=summary)


def scan_runs(root: Path) -> list[RunInfo]:
    """Every run folder under the runs folder, newest first."""
    if not root.is_dir():
        return []
    runs = []
    for path in root.iterdir():
        if path.is_dir():
            info = read_run(path)
            if info is not None:
                runs.append(info)
    return sorted(runs, key=lambda r: (r.started or 0, r.name), reverse=True)


def load_pretrain(path: Path) -> PretrainProgress:
    """A pretraining run's events folded from disk, as the live view would have seen them."""
    progress = PretrainProgress(run_dir=path)
    for event in iter_jsonl(path / EVENTS):
        progress.apply(event)
    return progress


def load_eval(path: Path) -> EvalProgress:
    progress = EvalProgress(run_dir=path)
    for event in iter_jsonl(path / EVENTS):
        progress.apply(event)
    progress.add_rows(list(iter_jsonl(path / RESULTS)))
    return progress


def flatten(config: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def config_diff(a: dict, b: dict) -> list[tuple[str, object, object]]:
    """(key, value in a, value in b) for every config key whose values differ."""
    fa, fb = flatten(a), flatten(b)
    keys = sorted(set(fa) | set(fb))
    return [(k, fa.get(k), fb.get(k)) for k in keys if fa.get(k) != fb.get(k)]


PRETRAIN_FIGURES = ("final_loss", "eval_loss", "steps", "epochs", "rows", "n_params", "tokens_per_epoch",
                    "train_seconds", "total_seconds")
EVAL_FIGURES = ("accuracy", "correct", "n", "mode", "model", "tokens_per_second", "generate_seconds",
                "total_seconds")


def figures(kind: str, summary: dict | None) -> list[tuple[str, str]]:
    """(label, text) rows of a run's summary figures, in a fixed order."""
    summary = summary or {}
    names = PRETRAIN_FIGURES if kind == "pretrain" else EVAL_FIGURES
    rows = []
    for name in names:
        if name not in summary:
            continue
        value = summary[name]
        if name.endswith("seconds") and isinstance(value, (int, float)):
            text = fmt.duration(value)
        elif name == "accuracy" and isinstance(value, (int, float)):
            text = fmt.percent(value)
        else:
            text = fmt.number(value)
        rows.append((name.replace("_", " "), text))
    return rows
