"""Run folders read from disk for the Runs tab: one line per run, its series, and two runs compared."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.kinds import get as get_kind
from core.kinds import kinds
from core.runs import CONFIG, EVENTS, JOB_LOG, SUMMARY, read_json
from tui import format as fmt
from tui.jobs import first_event, last_event, started_by
from tui.progress import JobProgress


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
    """The one figure that says how a run went (its kind's headline), or a failed run's error."""
    if not summary:
        return ""
    if summary.get("status") == "failed" and summary.get("error"):
        error = " ".join(str(summary["error"]).split())
        return error if len(error) <= 40 else error[:39] + "…"
    spec = get_kind(kind)
    return spec.headline(summary) if spec is not None and spec.headline else ""


def _kind_from_name(path: Path) -> str | None:
    """A run folder's kind from its `<timestamp>-<kind>[-N]` name, for folders that never got a config."""
    for name in kinds():
        if path.name.endswith(f"-{name}") or f"-{name}-" in path.name:
            return name
    return None


def read_run(path: Path) -> RunInfo | None:
    """One run folder as a RunInfo, or None when the folder is not a run."""
    has_log = (path / JOB_LOG).exists()
    config = read_json(path / CONFIG) or {}
    if not config and not has_log and not (path / EVENTS).exists():
        return None
    summary = read_json(path / SUMMARY)
    start = first_event(path / EVENTS)
    start = start if start and start.get("type") == "start" else None
    kind = (summary or {}).get("kind") or config.get("kind") or (start or {}).get("kind") or _kind_from_name(path) or "unknown"
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


def load_progress(run: RunInfo) -> JobProgress:
    """A run read from disk through its tab's progress class (events, plus results for an evaluation)."""
    from tui.progress import EvalProgress
    from tui.tabs import tab_class

    cls = tab_class(run.kind)
    if cls is not None:
        return cls.progress_class.load(run.path)
    spec = get_kind(run.kind)  # a kind without a tab: its answers still read like an evaluation's
    return (EvalProgress if spec is not None and spec.results else JobProgress).load(run.path)


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
    return [(key, *values) for key, values in config_diffs([a, b])]


def config_diffs(configs: list[dict]) -> list[tuple[str, list]]:
    """(key, [value in each config]) for every config key whose values are not all the same."""
    flat = [flatten(c) for c in configs]
    keys = sorted(set().union(*flat))
    return [(k, [f.get(k) for f in flat]) for k in keys if len({repr(f.get(k)) for f in flat}) > 1]


def figures(kind: str, summary: dict | None) -> list[tuple[str, str]]:
    """(label, text) rows of a run's summary figures, in a fixed order."""
    summary = summary or {}
    spec = get_kind(kind)
    names = spec.figures if spec is not None else ("total_seconds",)
    rows = []
    for name in names:
        if name not in summary:
            continue
        value = summary[name]
        if name.endswith("seconds") and isinstance(value, (int, float)):
            text = fmt.duration(value)
        elif (name == "accuracy" or name.startswith("test_accuracy")) and isinstance(value, (int, float)):
            text = fmt.percent(value)
        elif isinstance(value, dict):  # e.g. retention {exact_match, f1}: "exact match 0.95 · f1 0.97"
            text = " · ".join(f"{k.replace('_', ' ')} {fmt.number(v) if v is not None else '-'}" for k, v in value.items())
        else:
            text = fmt.number(value)
        rows.append((name.replace("_", " "), text))
    if (summary.get("world_size") or 1) > 1:  # a distributed run: one run folder, N ranks
        rows.append(("processes", str(summary["world_size"])))
    return rows
