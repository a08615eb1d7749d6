"""Layout and focus as a keyboard user meets them: resizing, and which widget the keys reach on each screen."""

from __future__ import annotations

from app_fakes import RUNS_KEY, run_async, wait_until

from tui.widgets.key_value_table import KeyValueTable


@run_async
async def test_widening_the_terminal_puts_form_and_live_view_side_by_side(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        assert app.has_class("-narrow")
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.1)
        assert not app.has_class("-narrow")
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.1)
        assert app.has_class("-narrow")


@run_async
async def test_help_compare_and_run_screens_scroll_with_the_keyboard(make_app, sample_runs):
    """Check that each pushed screen focuses what the arrow keys should move, with no Tab first."""
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        await pilot.press("pagedown")
        await pilot.pause()
        assert app.screen.query_one("#help").scroll_y > 0
        await pilot.press("escape", RUNS_KEY)
        await wait_until(pilot, lambda: app.query_one("#runs-table").row_count == 4)
        await pilot.press("down", "enter")  # the evaluation
        await wait_until(pilot, lambda: app.screen.query("#results"))
        assert app.focused is app.screen.query_one("#results")
        await pilot.press("escape", "down", "m", "down", "m", "c")
        await wait_until(pilot, lambda: app.screen.query(KeyValueTable))
        table = app.screen.query_one(KeyValueTable)
        assert app.focused is table
        await pilot.pause()
        await pilot.press("down", "down")
        await pilot.pause()
        assert table.cursor_row == 2


@run_async
async def test_compare_table_shows_both_runs_columns_even_with_long_values(make_app, sample_runs):
    """A long config value must end in … rather than push run B's column out of view."""
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press(RUNS_KEY)
        await wait_until(pilot, lambda: app.query_one("#runs-table").row_count == 4)
        await pilot.press("down", "down", "m", "down", "m", "c")
        await wait_until(pilot, lambda: app.screen.query(KeyValueTable))
        table = app.screen.query_one(KeyValueTable)
        table.set_rows([("data", "/a/very/long/local/path/" * 6, "bookcorpus/bookcorpus")])
        await pilot.pause()
        assert table.virtual_size.width <= table.size.width


@run_async
async def test_plan_line_follows_the_form(make_app):
    """Check that the memory-plan line under a form is computed from the form's command line, again as a field changes."""
    from app_fakes import tab_key
    from textual.widgets import Input, Static

    asked: list[tuple[str, list[str]]] = []

    def planner(kind, options):
        asked.append((kind, list(options)))
        rank = options[options.index("--rank") + 1] if "--rank" in options else "-"
        return f"plan: {kind} rank {rank}"

    app = make_app(planner=planner)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(tab_key("finetune"))
        tab = app.query_one("#finetune-tab")
        await wait_until(pilot, lambda: "rank 16" in str(tab.query_one("#plan", Static).content))
        tab.query_one("#field-rank", Input).value = "4"
        await wait_until(pilot, lambda: "rank 4" in str(tab.query_one("#plan", Static).content))
        assert asked[-1][0] == "finetune" and "--model" in asked[-1][1]
        tab.query_one("#field-rank", Input).value = "x"  # not a number: the form says so, nothing is planned
        await wait_until(pilot, lambda: "whole number" in str(tab.query_one("#plan", Static).content))


@run_async
async def test_c_on_a_fine_tuning_ensemble_compares_its_adapters_and_their_vote(make_app, runs_root):
    """Check that with nothing marked, c on an ensemble run opens its adapters' answers and the vote side by side."""
    import json

    from app_fakes import T0, eval_events, eval_rows, write_run

    rows = eval_rows(8)
    run = write_run(runs_root, "20260101-150000-finetune", "finetune", eval_events(n=8, total=8, t0=T0),
                    {"status": "completed", "test_accuracy_after": 0.5, "total_seconds": 20.0,
                     "ensemble": {"size": 2, "data": "bootstrap", "members": [{"member": 1}, {"member": 2}]}},
                    results=rows)
    for k in (1, 2):
        member = run / "members" / f"member-{k}"
        member.mkdir(parents=True)
        (member / "config.json").write_text(json.dumps({"kind": "finetune", "member": k}))
        (member / "summary.json").write_text(json.dumps({"kind": "finetune", "status": "completed", "member": k}))
        (member / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press(RUNS_KEY)
        await wait_until(pilot, lambda: app.query_one("#runs-table").row_count == 1, timeout=30)
        await pilot.press("c")
        await wait_until(pilot, lambda: app.screen.query(KeyValueTable), timeout=30)
        shown = [r.path for r in app.screen.runs]
        assert shown == [run / "members" / "member-1", run / "members" / "member-2", run]
