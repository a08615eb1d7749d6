"""Jobs through the app with a fake job process that writes the engine's file contract.

These start real processes (tests/functional/fake_job.py) in their own sessions, follow their
files with the app's worker, stop them with SIGINT and check what is left on disk.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from app_fakes import RUNS_KEY, FakeHardware, FakeLauncher, run_async, wait_until
from textual import events
from textual.widgets import TabbedContent

from core.runs import read_json
from tui.jobs import FORCE_AFTER, Job, launch
from tui.messages import JobExited, RunningJobsFound
from tui.tabs.runs import RunsTab
from tui.widgets.loss_chart import LossChart
from tui.widgets.results_table import ResultsTable


@run_async
async def test_a_pretrain_started_in_the_app_draws_its_loss_chart(make_app):
    """Check that Start launches the job, the chart gets every loss and eval point, and the end shows."""
    app = make_app(launcher=FakeLauncher(steps=20))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2", "s")
        tab = app.job_tab("pretrain")
        await wait_until(pilot, lambda: tab.progress.status == "completed")
        await pilot.pause(0.6)
        chart = tab.query_one(LossChart)
        assert [p[0] for p in chart.train["train"]] == list(range(1, 21))
        assert len(chart.evals["eval"]) == 2
        assert "final loss" in str(tab.query_one("#outcome").render())
        run_dir = tab.run_dir
    assert read_json(run_dir / "summary.json")["status"] == "completed"
    assert "--rows 10000" in (run_dir / "job.log").read_text()  # the form's options reached the job


@run_async
async def test_an_eval_started_in_the_app_fills_a_row_per_question(make_app):
    app = make_app(launcher=FakeLauncher(steps=10))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3", "s")
        tab = app.job_tab("eval")
        await wait_until(pilot, lambda: tab.progress.status == "completed")
        await pilot.pause(0.6)
        table = tab.query_one(ResultsTable)
        assert table.row_count == 10
        assert sum(tab.progress.answer_counts.values()) == 10
        assert tab.progress.correct == 3  # the fake answers every fourth question right


@run_async
async def test_the_demo_preset_passes_only_demo_and_changed_fields(make_app):
    app = make_app(launcher=FakeLauncher(steps=4))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2", "d")
        app.query_one("#field-epochs").value = "1"
        await pilot.press("s")
        await wait_until(pilot, lambda: app.job_tab("pretrain").progress.status == "completed")
        first_line = (app.job_tab("pretrain").run_dir / "job.log").read_text().splitlines()[0]
    assert first_line.split(" pretrain ", 1)[1].split(" --out ")[0] == "--demo --epochs 1"


@run_async
async def test_the_chinese_demo_preset_starts_demo_zh(make_app):
    """The Preset select's third entry is `llmlab pretrain --demo zh`: its own tokenizer, generation samples."""
    app = make_app(launcher=FakeLauncher(steps=2))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        app.query_one("#demo").value = 2
        await pilot.pause()
        assert app.query_one("#field-tokenizer").value.startswith("train")
        await pilot.press("s")
        await wait_until(pilot, lambda: app.job_tab("pretrain").progress.status == "completed")
        first_line = (app.job_tab("pretrain").run_dir / "job.log").read_text().splitlines()[0]
    assert first_line.split(" pretrain ", 1)[1].split(" --out ")[0] == "--demo zh"


@run_async
async def test_stop_leaves_a_stopped_run(make_app):
    """Check that Stop sends SIGINT and the job writes status `stopped` and exits 130."""
    app = make_app(launcher=FakeLauncher(forever=True, delay=0.02))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2", "s")
        tab = app.job_tab("pretrain")
        await wait_until(pilot, lambda: tab.progress.step >= 5)
        await pilot.press("x")
        await wait_until(pilot, lambda: tab.progress.finished)
        assert tab.progress.status == "stopped"
        assert tab.progress.returncode == 130
    assert read_json(tab.run_dir / "summary.json")["status"] == "stopped"


@run_async
async def test_a_failing_job_shows_its_log_tail_not_a_crash(make_app):
    app = make_app(launcher=FakeLauncher(fail=True))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2", "s")
        tab = app.job_tab("pretrain")
        await wait_until(pilot, lambda: tab.progress.finished)
        await pilot.pause(0.6)
        outcome = str(tab.query_one("#outcome").render())
        assert tab.progress.status == "failed"
        assert "CUDA out of memory (fake)" in outcome
        assert "Traceback (most recent call last):" in outcome  # from job.log
        assert app.is_running


@run_async
async def test_an_engine_that_exits_without_files_is_reported(make_app):
    """A job that dies before writing events (bad install, usage error) shows its job.log."""

    class Broken(FakeLauncher):
        def argv(self, kind, options, run_dir):
            return [sys.executable, "-c", "import sys; print('llmlab: error: no such option'); sys.exit(2)"]

    app = make_app(launcher=Broken())
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("3", "s")
        tab = app.job_tab("eval")
        await wait_until(pilot, lambda: tab.progress.finished)
        await pilot.pause(0.6)
        assert tab.progress.status == "failed"
        assert "exited with code 2" in tab.progress.error
        assert "no such option" in str(tab.query_one("#outcome").render())


@run_async
async def test_two_jobs_run_at_once(make_app):
    app = make_app(launcher=FakeLauncher(forever=True, delay=0.05))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2", "s", "3", "s")
        pretrain, evaluate = app.job_tab("pretrain"), app.job_tab("eval")
        await wait_until(pilot, lambda: pretrain.progress.step >= 3 and len(evaluate.progress.rows) >= 8)
        assert len(app.jobs) == 2
        await pilot.press("x", "2", "x")
        await wait_until(pilot, lambda: pretrain.progress.finished and evaluate.progress.finished)
        assert (pretrain.progress.status, evaluate.progress.status) == ("stopped", "stopped")


@run_async
async def test_quitting_while_a_job_streams_ends_every_follower(make_app, spawned, monkeypatch):
    """The followers check for cancellation while events keep coming, so quitting leaves no thread behind."""
    import tui.app

    ended: list[threading.Event] = []  # one per follower, set when its loop returns
    real_follow = tui.app.LlmlabApp._follow

    def recording_follow(self, job):
        done = threading.Event()
        ended.append(done)
        try:
            real_follow(self, job)
        finally:
            done.set()

    monkeypatch.setattr(tui.app.LlmlabApp, "_follow", recording_follow)
    app = make_app(launcher=FakeLauncher(forever=True, delay=0.001))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2", "s")
        tab = app.job_tab("pretrain")
        await wait_until(pilot, lambda: tab.progress.step >= 50)
        pid = app.jobs[tab.run_dir].pid
        spawned.append(pid)
        await pilot.press("q", "q")  # asking twice opens one dialog
        await wait_until(pilot, lambda: app.screen.__class__.__name__ == "QuitScreen")
        assert len(app.screen_stack) == 2
        await pilot.press("l")  # leave it running
    # A follower thread is never killed, so each loop must see the cancellation and return by itself.
    assert ended and all(done.wait(timeout=30) for done in ended)
    os.kill(pid, 0)  # still running after the app has gone
    os.kill(pid, signal.SIGINT)


@run_async
async def test_quit_and_stop_asks_running_jobs_to_stop(make_app, runs_root):
    app = make_app(launcher=FakeLauncher(forever=True, delay=0.01))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2", "s")
        await wait_until(pilot, lambda: app.job_tab("pretrain").progress.step >= 3)
        job = app.jobs[app.job_tab("pretrain").run_dir]
        await pilot.press("q", "s")
    job.process.wait(timeout=10)
    assert read_json(job.run_dir / "summary.json")["status"] == "stopped"


@run_async
async def test_reopening_the_app_reattaches_to_a_running_job(make_app, runs_root, spawned):
    """A job left running by an earlier session is found by its start-event pid and followed live."""
    job = launch("eval", [], runs_root, FakeLauncher(forever=True, delay=0.05))
    spawned.append(job.pid)
    deadline = time.monotonic() + 30  # a child python starting on a busy CPU can take seconds
    while not (job.run_dir / "events.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    app = make_app(attach_running=True)
    async with app.run_test(size=(120, 40)) as pilot:
        tab = app.job_tab("eval")
        await wait_until(pilot, lambda: tab.run_dir == job.run_dir)
        await wait_until(pilot, lambda: tab.query_one(ResultsTable).row_count >= 8)
        assert tab.progress.status == "running"
        await pilot.press("3", "x")  # Stop works on a job this app did not start
        await wait_until(pilot, lambda: tab.progress.finished)
    job.process.wait(timeout=10)
    assert read_json(job.run_dir / "summary.json")["status"] == "stopped"


@run_async
async def test_ten_thousand_events_cost_about_two_chart_redraws_a_second(make_app, runs_root):
    """Check the throttle: events stream through the real follower as fast as a file can grow."""
    run_dir = runs_root / "20260101-120000-pretrain"
    run_dir.mkdir()
    events_path = run_dir / "events.jsonl"

    def write_events() -> None:
        with open(events_path, "w") as fh:
            fh.write(json.dumps({"type": "start", "time": 0, "elapsed": 0, "kind": "pretrain", "pid": os.getpid(),
                                 "total_steps": 10_000, "steps_per_epoch": 10_000, "epochs": 1}) + "\n")
            for step in range(1, 10_001):
                fh.write(json.dumps({"type": "loss", "time": step, "elapsed": step / 1000, "step": step, "epoch": 1,
                                     "loss": 10 / step ** 0.3, "lr": 1e-3, "tokens_per_s": 1e5}) + "\n")
                if step % 500 == 0:
                    fh.flush()
                    time.sleep(0.1)  # 10,000 events over ~2 s

    app = make_app(poll_seconds=0.02)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        chart = app.job_tab("pretrain").query_one(LossChart)
        await pilot.pause(0.2)
        replots_before = chart.replots
        app.attach_job(Job(kind="pretrain", run_dir=run_dir, pid=os.getpid()))  # "alive" while the test runs
        started = time.monotonic()
        writer = threading.Thread(target=write_events)
        writer.start()
        await wait_until(pilot, lambda: app.job_tab("pretrain").progress.step == 10_000, timeout=20)
        await pilot.pause(0.6)
        seconds = time.monotonic() - started
        writer.join()
        replots = chart.replots - replots_before
        assert len(chart.train["train"]) == 10_000
        assert replots <= 2 * seconds + 2, f"{replots} redraws in {seconds:.1f}s"
        app.post_message(JobExited(run_dir, 0, None, []))
        await pilot.pause()


@run_async
async def test_a_failing_worker_becomes_a_notification(make_app):
    """Pitfall: worker errors must neither vanish nor crash the app."""
    app = make_app(hardware=FakeHardware(fail=True), sample_seconds=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: len(app._notifications) > 0)
        note = list(app._notifications)[0]
        assert note.severity == "error"
        assert "NVML exploded" in note.message
        assert app.is_running


@run_async
async def test_two_starts_arriving_together_launch_one_job(make_app, runs_root):
    """Check that a second s queued before the app has handled the first Start is ignored.

    A terminal read can hold both key presses of a quick double tap, so both are queued at once.
    """
    app = make_app(launcher=FakeLauncher(forever=True, delay=0.05))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2")
        app.post_message(events.Key("s", "s"))
        app.post_message(events.Key("s", "s"))
        await wait_until(pilot, lambda: app.job_tab("pretrain").progress.step >= 1)
        await pilot.pause(0.3)
        assert len(list(runs_root.iterdir())) == 1
        await pilot.press("x")
        await wait_until(pilot, lambda: app.job_tab("pretrain").progress.finished)


@run_async
async def test_enter_on_a_running_run_opens_its_live_tab_with_a_relative_runs_folder(make_app, tmp_path, monkeypatch):
    """Check that scans of ./runs and the absolute run folders jobs get name the same run."""
    monkeypatch.chdir(tmp_path)
    app = make_app(runs_root=Path("runs"), launcher=FakeLauncher(forever=True, delay=0.05))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("2", "s")
        await wait_until(pilot, lambda: app.job_tab("pretrain").progress.step >= 1)
        await pilot.press(RUNS_KEY)
        await wait_until(pilot, lambda: app.query_one(RunsTab).runs)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.query_one(TabbedContent).active == "pretrain")
        assert len(app.screen_stack) == 1  # the live tab, not a snapshot read from disk
        await pilot.press("x")
        await wait_until(pilot, lambda: app.job_tab("pretrain").progress.finished)


def test_a_second_stop_within_the_grace_period_sends_nothing_and_a_later_one_ends_the_job(tmp_path, spawned):
    """The engine takes a second SIGINT as "stop now, without saving", so a double press must not send one."""
    received = tmp_path / "signals"
    child = (f"import signal, time\n"
             f"signal.signal(signal.SIGINT, lambda *a: open({str(received)!r}, 'a').write('INT\\n'))\n"
             f"open({str(received)!r}, 'a').write('ready\\n')\n"
             f"time.sleep(60)\n")
    process = subprocess.Popen([sys.executable, "-c", child], start_new_session=True)
    spawned.append(process.pid)
    deadline = time.monotonic() + 30  # a child python starting on a busy CPU can take seconds
    while not received.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    job = Job(kind="pretrain", run_dir=tmp_path, pid=process.pid, process=process)
    assert job.stop() == "asked"
    assert job.stop() == "waiting"
    time.sleep(0.3)
    assert received.read_text().split() == ["ready", "INT"]
    job.stop_requested -= FORCE_AFTER  # as if the first press was long ago
    assert job.stop() == "forced"
    assert process.wait(timeout=10) == -signal.SIGTERM
    assert job.stop() is None


@run_async
async def test_of_two_running_evals_found_the_newest_gets_the_tab_and_the_other_is_named(make_app, runs_root):
    """Check the notice says which job is followed and which is only listed, instead of "following" both."""
    older, newer = runs_root / "20260101-120000-eval", runs_root / "20260101-130000-eval"
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        app.post_message(RunningJobsFound([Job("eval", older, pid=os.getpid()), Job("eval", newer, pid=os.getpid())]))
        await wait_until(pilot, lambda: app._notifications)
        assert app.job_tab("eval").run_dir == newer
        assert list(app.jobs) == [newer]
        message = list(app._notifications)[0].message
        assert message == f"Following {newer.name}\nAlso running, listed in the Runs tab: {older.name}"
