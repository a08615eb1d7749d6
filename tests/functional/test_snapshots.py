"""Snapshots of every tab and screen at 80x24 and 120x40, fed by fakes so they never depend on this machine.

Update only after looking at the report: `pytest tests/functional/test_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import pytest
from app_fakes import RUNS_KEY, SIZES, FakeHardware, eval_events, eval_rows, finetune_events, pretrain_events, tab_key

from tui.jobs import Job
from tui.messages import EventsRead, HardwareSampled, JobExited, ResultsRead

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def feed_hardware(app, hardware: FakeHardware, samples: int = 40) -> None:
    """Post what the sampler thread would have posted over `samples` seconds."""
    for _ in range(samples):
        app.post_message(HardwareSampled(hardware.sample()))


def show_job(app, runs_root, kind: str, name: str, events: list[dict], rows: list[dict] | None = None) -> Job:
    """Attach a job without a process and post the follower's messages for it."""
    run_dir = runs_root / name
    run_dir.mkdir(exist_ok=True)
    job = Job(kind=kind, run_dir=run_dir, pid=None)
    app.attach_job(job, follow=False)
    app.post_message(EventsRead(run_dir, events))
    if rows:
        app.post_message(ResultsRead(run_dir, rows))
    return job


async def settle(pilot, *tabs) -> None:
    await pilot.pause()
    for tab in tabs:
        tab.flush()
    await pilot.pause()


class TestHardware:
    @pytest.mark.parametrize("size", SIZES)
    def test_hardware_tab_shows_every_gpu_with_history(self, snap, make_app, size):
        """Check that two GPUs, the CPU cores, RAM, swap and disk show with sparklines of 40 readings."""
        hardware = FakeHardware(gpus=2)
        app = make_app(hardware=hardware)

        async def run_before(pilot):
            feed_hardware(app, hardware)
            await pilot.pause()

        assert snap(app, terminal_size=size, run_before=run_before)

    def test_hardware_tab_without_gpu_is_calm(self, snap, make_app):
        """Check that a machine without NVML shows a quiet 'no NVIDIA GPU found' panel, not an error."""
        hardware = FakeHardware(gpus=0, cores=2)
        app = make_app(hardware=hardware)

        async def run_before(pilot):
            feed_hardware(app, hardware, samples=5)
            await pilot.pause()

        assert snap(app, terminal_size=(80, 24), run_before=run_before)


class TestPretrain:
    @pytest.mark.parametrize("size", SIZES)
    def test_pretrain_form_has_seed_defaults(self, snap, make_app, size):
        """Check the idle Pretrain tab: the seed task's defaults and the keys to start."""
        assert snap(make_app(), press=["2"], terminal_size=size)

    def test_pretrain_demo_preset_fills_the_form(self, snap, make_app):
        assert snap(make_app(), press=["2", "d"], terminal_size=(120, 40))

    @pytest.mark.parametrize("size", SIZES)
    def test_pretrain_running_shows_chart_progress_and_log(self, snap, make_app, runs_root, size):
        """Check a running job: loss chart with eval points, step/epoch/tokens/ETA line, log lines."""
        app = make_app()

        async def run_before(pilot):
            show_job(app, runs_root, "pretrain", "20260101-120000-pretrain", pretrain_events(status=None))
            await pilot.press("2")
            await settle(pilot, app.job_tab("pretrain"))

        assert snap(app, terminal_size=size, run_before=run_before)

    def test_pretrain_finished_shows_figures_and_report(self, snap, make_app, runs_root):
        app = make_app()

        async def run_before(pilot):
            job = show_job(app, runs_root, "pretrain", "20260101-120000-pretrain", pretrain_events())
            (job.run_dir / "report.md").write_text("# report\n")
            summary = {"status": "completed", "final_loss": 3.412, "eval_loss": 3.702, "total_seconds": 90.0}
            await pilot.pause()
            app.post_message(JobExited(job.run_dir, 0, summary, []))
            await pilot.press("2")
            await settle(pilot, app.job_tab("pretrain"))

        assert snap(app, terminal_size=(120, 40), run_before=run_before)

    def test_pretrain_failure_shows_job_log_tail(self, snap, make_app, runs_root):
        """Check that a failed job shows its error and the last lines of job.log, not a crash."""
        app = make_app()

        async def run_before(pilot):
            job = show_job(app, runs_root, "pretrain", "20260101-120000-pretrain", pretrain_events(steps=3, status=None)[:5])
            tail = ["Traceback (most recent call last):", '  File "core/pretrain/data.py", line 88, in load',
                    "OSError: cannot reach the Hugging Face Hub to stream 'bookcorpus/bookcorpus'"]
            await pilot.pause()
            app.post_message(JobExited(job.run_dir, 2, {"status": "failed", "total_seconds": 4.6,
                                                        "error": "cannot reach the Hugging Face Hub"}, tail))
            await pilot.press("2")
            await pilot.pause()
            app.clear_notifications()  # the toast says the same; keep the tab itself in view
            await settle(pilot, app.job_tab("pretrain"))

        assert snap(app, terminal_size=(80, 24), run_before=run_before)


class TestFinetune:
    @pytest.mark.parametrize("size", SIZES)
    def test_finetune_form_has_seed_defaults(self, snap, make_app, size):
        """Check the idle Fine-tune tab: seed 001's LoRA defaults (rank 16, alpha 32, lr 1e-4) in the form."""
        assert snap(make_app(), press=[tab_key("finetune")], terminal_size=size)

    @pytest.mark.parametrize("size", SIZES)
    def test_finetune_running_shows_losses_and_the_adapter_size(self, snap, make_app, runs_root, size):
        """Check a running fine-tune: train loss and val points on one chart, the trainable-parameter line."""
        app = make_app()

        async def run_before(pilot):
            show_job(app, runs_root, "finetune", "20260101-120000-finetune", finetune_events(status=None)[:-6])
            await pilot.press(tab_key("finetune"))
            await settle(pilot, app.job_tab("finetune"))

        assert snap(app, terminal_size=size, run_before=run_before)

    def test_finetune_finished_shows_accuracy_before_and_after(self, snap, make_app, runs_root):
        app = make_app()

        async def run_before(pilot):
            job = show_job(app, runs_root, "finetune", "20260101-120000-finetune", finetune_events())
            (job.run_dir / "report.md").write_text("# report\n")
            summary = {"status": "completed", "test_accuracy_before": 0.25, "test_accuracy_after": 0.6111,
                       "trainable_ratio": 540_672 / 494_032_768, "best_val_loss": 0.412, "total_seconds": 26.0}
            await pilot.pause()
            app.post_message(JobExited(job.run_dir, 0, summary, []))
            await pilot.press(tab_key("finetune"))
            await settle(pilot, app.job_tab("finetune"))

        assert snap(app, terminal_size=(120, 40), run_before=run_before)


class TestEvaluate:
    @pytest.mark.parametrize("size", SIZES)
    def test_evaluate_form_has_seed_defaults(self, snap, make_app, size):
        assert snap(make_app(), press=["3"], terminal_size=size)

    @pytest.mark.parametrize("size", SIZES)
    def test_evaluate_running_fills_table_and_answer_bar(self, snap, make_app, runs_root, size):
        """Check a running evaluation: a row per question, running accuracy, answer distribution."""
        app = make_app()

        async def run_before(pilot):
            show_job(app, runs_root, "eval", "20260101-140000-eval", eval_events(status=None), eval_rows(12))
            await pilot.press("3")
            await settle(pilot, app.job_tab("eval"))

        assert snap(app, terminal_size=size, run_before=run_before)

    def test_selecting_a_row_shows_full_prompt_and_reply(self, snap, make_app, runs_root):
        app = make_app()

        async def run_before(pilot):
            show_job(app, runs_root, "eval", "20260101-140000-eval", eval_events(status=None), eval_rows(12))
            await pilot.press("3")
            await settle(pilot, app.job_tab("eval"))
            app.query_one("#results").focus()
            await pilot.press("up", "up", "enter")

        assert snap(app, terminal_size=(80, 24), run_before=run_before)


class TestRuns:
    @pytest.mark.parametrize("size", SIZES)
    def test_runs_tab_lists_every_run(self, snap, make_app, sample_runs, size):
        app = make_app()

        async def run_before(pilot):
            await pilot.press(RUNS_KEY)
            await app.workers.wait_for_complete()
            await pilot.pause()

        assert snap(app, terminal_size=size, run_before=run_before)

    @pytest.mark.parametrize("size", SIZES)
    def test_opening_a_pretrain_run_shows_its_chart(self, snap, make_app, sample_runs, size):
        app = make_app()

        async def run_before(pilot):
            await pilot.press(RUNS_KEY)
            await app.workers.wait_for_complete()
            await pilot.pause()
            await pilot.press("down", "down", "down", "enter")  # oldest run: the completed pretrain
            await app.workers.wait_for_complete()
            await pilot.pause()

        assert snap(app, terminal_size=size, run_before=run_before)

    def test_opening_an_eval_run_shows_its_results(self, snap, make_app, sample_runs):
        app = make_app()

        async def run_before(pilot):
            await pilot.press(RUNS_KEY)
            await app.workers.wait_for_complete()
            await pilot.pause()
            await pilot.press("down", "enter")
            await app.workers.wait_for_complete()
            await pilot.pause()

        assert snap(app, terminal_size=(120, 40), run_before=run_before)

    @pytest.mark.parametrize("size", SIZES)
    def test_comparing_two_runs_overlays_curves_and_diffs_config(self, snap, make_app, sample_runs, size):
        app = make_app()

        async def run_before(pilot):
            await pilot.press(RUNS_KEY)
            await app.workers.wait_for_complete()
            await pilot.pause()
            await pilot.press("down", "down", "m", "down", "m", "c")
            await app.workers.wait_for_complete()
            await pilot.pause()

        assert snap(app, terminal_size=size, run_before=run_before)


    def test_comparing_adapters_and_their_vote_shows_answers_side_by_side(self, snap, make_app, runs_root):
        """Check that three adapters' eval runs and their vote compare question by question, with accuracies."""
        from app_fakes import T0, write_run

        rows = eval_rows(12)
        for n, flip in enumerate((0, 1, 2)):
            mine = [{**r, "pred": "ABCD"[(i + flip) % 4] if i % 3 == flip else r["pred"]} for i, r in enumerate(rows)]
            mine = [{**r, "correct": r["pred"] == r["gold"]} for r in mine]
            acc = sum(r["correct"] for r in mine) / 12
            write_run(runs_root, f"20260101-14000{n}-eval", "eval", eval_events(n=12, total=12, t0=T0 + 60 * n),
                      {"status": "completed", "accuracy": acc, "correct": round(acc * 12), "n": 12, "total_seconds": 30.0},
                      results=mine, config={"adapter": [f"runs/ft-{n}"]})
        write_run(runs_root, "20260101-140500-vote", "vote", eval_events(n=12, total=12, t0=T0 + 300),
                  {"status": "completed", "accuracy": 0.5, "correct": 6, "n": 12, "total_seconds": 0.4, "runs": []},
                  results=rows, config={"runs": ["a", "b", "c"]})
        app = make_app()

        async def run_before(pilot):
            await pilot.press(RUNS_KEY)
            await app.workers.wait_for_complete()
            await pilot.pause()
            await pilot.press("m", "down", "m", "down", "m", "down", "m", "c")
            await app.workers.wait_for_complete()
            await pilot.pause()

        assert snap(app, terminal_size=(120, 40), run_before=run_before)


class FakeChat:
    """Replies in three pieces, as a model streaming its tokens would."""

    def reply(self, prompt, on_text, max_new_tokens):
        for piece in ("，村里", "举行了", "运动会。"):
            on_text(piece)
        return "，村里举行了运动会。"


class TestChat:
    @pytest.mark.parametrize("size", SIZES)
    def test_chat_streams_the_reply_under_the_prompt(self, snap, make_app, sample_runs, size):
        app = make_app(chat_factory=lambda run_dir: FakeChat())

        async def run_before(pilot):
            await pilot.press(RUNS_KEY)
            await app.workers.wait_for_complete()
            await pilot.pause()
            await pilot.press("down", "down", "down", "t")  # the completed pretrain
            await pilot.pause()
            await pilot.press(*"hello", "enter")
            await app.workers.wait_for_complete()
            await pilot.pause()

        assert snap(app, terminal_size=size, run_before=run_before)


class TestDialogs:
    def test_help_lists_every_key(self, snap, make_app):
        assert snap(make_app(), press=["question_mark"], terminal_size=(80, 24))

    def test_quit_while_a_job_runs_asks_first(self, snap, make_app, runs_root):
        app = make_app()

        async def run_before(pilot):
            job = show_job(app, runs_root, "pretrain", "20260101-120000-pretrain", pretrain_events(status=None))
            job.returncode = lambda: None  # looks alive, without a process
            await pilot.press("2")
            await settle(pilot, app.job_tab("pretrain"))
            await pilot.press("q")

        assert snap(app, terminal_size=(80, 24), run_before=run_before)
