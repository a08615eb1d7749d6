"""Fixtures for the functional tests: the app wired to fakes, sample runs, and frozen time.

Snapshots must never depend on this machine: the hardware, the clock and the time zone are
fixed here, the Input cursor does not blink, and runs live in the test's tmp folder.
"""

from __future__ import annotations

import os
import time
from importlib import metadata
from pathlib import Path

import pytest
from app_fakes import T0, FakeHardware, FakeLauncher, FixedClock, eval_events, eval_rows, pretrain_events, write_run

from tui.app import LlmlabApp

# Snapshots are only comparable under exactly these versions (Textual changes rendering between releases).
SNAPSHOT_VERSIONS = {"textual": "8.2.8", "textual-plotext": "1.0.1", "plotext": "5.3.2",
                     "pytest-textual-snapshot": "1.1.0"}


def pytest_configure(config):
    config.addinivalue_line("markers", "engine: drives the real `llmlab pretrain/eval` engine (tiny demo jobs)")
    config.addinivalue_line("markers", "serial: spawns job processes; keep off crowded workers")
    config.addinivalue_line("markers", "serve: drives a real `llmlab serve` (one server per module; -m serve runs them)")
    config.addinivalue_line("markers", "browser: drives headless Chromium (Debian's chromium package; skips without it)")
    if config.getoption("--snapshot-update", default=False):
        wrong = {name: metadata.version(name) for name, want in SNAPSHOT_VERSIONS.items()
                 if metadata.version(name) != want}
        if wrong:
            raise pytest.UsageError(f"refusing --snapshot-update: snapshots are pinned to {SNAPSHOT_VERSIONS}, found {wrong}")


@pytest.fixture(autouse=True)
def frozen_environment(monkeypatch):
    """No cursor blink, UTC times, and no COLUMNS/LINES leaking in from the developer's terminal."""
    from textual.widgets import Input

    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def runs_root(tmp_path) -> Path:
    root = tmp_path / "runs"
    root.mkdir()
    return root


@pytest.fixture
def make_app(runs_root):
    """An app wired to fakes; keyword arguments override any of them."""

    def make(**overrides) -> LlmlabApp:
        options = dict(hardware=FakeHardware(), clock=FixedClock(), runs_root=runs_root,
                       launcher=FakeLauncher(), sample_seconds=None, poll_seconds=0.05, attach_running=False,
                       planner=None)  # no memory-plan line: it reads files on a thread (test_plan_line_follows_the_form)
        options.update(overrides)
        return LlmlabApp(**options)

    return make


@pytest.fixture
def spawned():
    """Processes a test started directly; any still alive at the end are ended by pid."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, 9)
        except (ProcessLookupError, PermissionError):
            pass


@pytest.fixture
def sample_runs(runs_root) -> Path:
    """Four finished runs: two pretrains (different lr), an evaluation, and a failed pretrain."""
    write_run(runs_root, "20260101-120000-pretrain", "pretrain", pretrain_events(),
              {"status": "completed", "final_loss": 3.412, "eval_loss": 3.702, "steps": 60, "epochs": 3,
               "rows": 10_000, "n_params": 124_439_808, "tokens_per_epoch": 2_500_000, "train_seconds": 75.0,
               "total_seconds": 90.0})
    write_run(runs_root, "20260101-130000-pretrain", "pretrain", pretrain_events(t0=T0 + 3600),
              {"status": "stopped", "final_loss": 3.9, "steps": 41, "total_seconds": 61.5}, config={"lr": 3e-3})
    write_run(runs_root, "20260101-140000-eval", "eval", eval_events(n=12, total=12, t0=T0 + 7200),
              {"status": "completed", "accuracy": 0.5, "correct": 6, "n": 12, "total_seconds": 30.0,
               "tokens_per_second": 812.0, "mode": "generate", "model": "Qwen/Qwen2.5-0.5B"}, results=eval_rows(12))
    write_run(runs_root, "20260101-150000-pretrain", "pretrain", pretrain_events(steps=0 + 3, t0=T0 + 10800, status="failed")[:5],
              {"status": "failed", "error": "cannot reach the Hugging Face Hub", "total_seconds": 4.6},
              log="Traceback (most recent call last):\nOSError: cannot reach the Hugging Face Hub\n")
    return runs_root




@pytest.fixture
def snap(snap_compare):
    """snap_compare that also fails when the app crashed before its screenshot (Textual still takes one)."""

    def compare(app, **kwargs) -> bool:
        matched = snap_compare(app, **kwargs)
        assert app._exception is None, f"the app crashed: {app._exception!r}"
        return matched

    return compare
