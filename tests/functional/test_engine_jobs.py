"""The app driving the real engine: tiny offline `--demo` jobs, started, followed and stopped from the UI.

They run in the default suite (tiny sizes, about half a minute together) and carry the
`engine` marker, so `-m engine` runs just them.
"""

from __future__ import annotations

import pytest
from app_fakes import run_async, wait_until

from core.runs import read_json
from tui.jobs import Launcher
from tui.widgets.loss_chart import LossChart
from tui.widgets.results_table import ResultsTable

pytestmark = [pytest.mark.engine, pytest.mark.slow]


async def start_demo(app, pilot, tab_key: str, **fields) -> None:
    """Pick the Demo preset, shrink it with `fields`, and press Start."""
    await pilot.press(tab_key, "d")
    for name, value in fields.items():
        app.query_one(f"#field-{name}").value = value
    await pilot.press("s")


@run_async
async def test_a_tiny_demo_pretrain_fills_the_chart(make_app):
    app = make_app(launcher=Launcher())
    async with app.run_test(size=(120, 40)) as pilot:
        await start_demo(app, pilot, "2", rows="300", epochs="1")
        tab = app.job_tab("pretrain")
        await wait_until(pilot, lambda: tab.progress.finished, timeout=240)
        await pilot.pause(0.6)
        assert tab.progress.status == "completed", tab.progress.log_tail
        assert len(tab.query_one(LossChart).train.get("train", [])) >= 1
        assert read_json(tab.run_dir / "summary.json")["status"] == "completed"


@run_async
async def test_stopping_a_demo_pretrain_leaves_a_stopped_run(make_app):
    app = make_app(launcher=Launcher())
    async with app.run_test(size=(120, 40)) as pilot:
        await start_demo(app, pilot, "2", rows="800", epochs="3")  # ~30 steps: still running when x arrives
        tab = app.job_tab("pretrain")
        await wait_until(pilot, lambda: tab.progress.step >= 1, timeout=240)
        await pilot.press("x")
        await wait_until(pilot, lambda: tab.progress.finished, timeout=120)
        assert tab.progress.status == "stopped", tab.progress.log_tail
    assert read_json(tab.run_dir / "summary.json")["status"] == "stopped"


@run_async
async def test_a_tiny_demo_eval_fills_a_row_per_question(make_app):
    app = make_app(launcher=Launcher())
    async with app.run_test(size=(120, 40)) as pilot:
        await start_demo(app, pilot, "3", limit="6", **{"max-new-tokens": "8"})
        tab = app.job_tab("eval")
        await wait_until(pilot, lambda: tab.progress.finished, timeout=240)
        await pilot.pause(0.6)
        assert tab.progress.status == "completed", tab.progress.log_tail
        summary = read_json(tab.run_dir / "summary.json")
        assert tab.query_one(ResultsTable).row_count == summary["n"] == len(tab.progress.rows)
