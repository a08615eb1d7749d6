"""Run folders as the Runs tab lists them: one line per run, its figures, and runs compared.

Everything is read through the run-folder reader the app is given (core.runlog): what a run is,
whether it is still running (its one rule), its summary; this module only shapes it for display.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from core.kinds import get as get_kind
from core.kinds import kinds
from core.runlog import RunFolder, RunsReader, Start
from core.runs import JOB_LOG
from tui import format as fmt


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


def read_run(path: Path | RunFolder) -> RunInfo | None:
    """One run folder as a RunInfo, or None when the folder is not a run."""
    folder = path if isinstance(path, RunFolder) else RunFolder(Path(path))
    if not folder.looks_like_a_run():
        return None
    summary = folder.summary()
    start = folder.first_event()
    start = start if isinstance(start, Start) else None
    kind = folder.kind(summary) or _kind_from_name(folder.path) or "unknown"
    started = start.time if start is not None else None
    if started is None:
        try:
            started = (folder.path / JOB_LOG if (folder.path / JOB_LOG).exists() else folder.path).stat().st_mtime
        except OSError:
            started = None
    status = folder.status(summary)
    if summary and status != "running":
        duration = summary.get("total_seconds")
    else:  # still going (or gone without a word): as far as its events got
        last = folder.last_event()
        duration = last.elapsed if last is not None else None
    return RunInfo(path=folder.path, kind=kind, status=status, started=started, duration=duration,
                   headline=headline(kind, summary), config=folder.config(), summary=summary)


def scan_runs(runs: RunsReader | Path) -> list[RunInfo]:
    """Every run folder under the runs folder, newest first."""
    reader = runs if isinstance(runs, RunsReader) else RunsReader(runs)
    found = [info for info in map(read_run, reader.scan()) if info is not None]
    return sorted(found, key=lambda r: (r.started or 0, r.name), reverse=True)


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
        rows.append(("processes", str(summary["world_size"]) + (" (FSDP)" if summary.get("fsdp") else "")))
    memory = [m for m in summary.get("rank_memory") or [] if isinstance(m, dict)]
    if len(memory) > 1:  # each rank's peak: what sharding (or not) cost each process
        key = "peak_gpu_mib" if all(m.get("peak_gpu_mib") is not None for m in memory) else "peak_rss_mib"
        rows.append((f"peak {'GPU' if key == 'peak_gpu_mib' else 'RSS'}/rank",
                     " · ".join(fmt.gib(m.get(key)) for m in memory)))
    return rows
