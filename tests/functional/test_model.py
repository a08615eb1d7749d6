"""The app's logic without a terminal: file following, form options, progress and run folders."""

from __future__ import annotations

import json

import pytest
from app_fakes import T0, eval_events, eval_rows, pretrain_events, write_run

from core.runlog import JsonlTail, RunFollower
from tui import format as fmt
from tui.jobs import claim_run_dir, find_running_jobs, tail_lines
from tui.kinds import load_progress
from tui.kinds.eval import EvalProgress
from tui.kinds.pretrain import PretrainProgress
from tui.options import FormError, command_options, defaults, preset
from tui.runinfo import config_diff, headline, read_run, scan_runs
from tui.tabs.evaluate import EvaluateTab
from tui.tabs.pretrain import PretrainTab
from tui.widgets.answer_bars import segments
from tui.widgets.loss_chart import int_ticks, thin


def test_jsonl_tail_reads_only_new_complete_lines(tmp_path):
    path = tmp_path / "events.jsonl"
    tail = JsonlTail(path)
    assert tail.read_new() == []  # no file yet
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3')  # the writer is mid-line
    assert tail.read_new() == [{"a": 1}, {"a": 2}]
    assert tail.read_new() == []
    with open(path, "a") as fh:
        fh.write('}\nnot json\n{"a": 4}\n')
    assert tail.read_new() == [{"a": 3}, {"a": 4}]
    path.write_text('{"a": 9}\n')  # rewritten shorter: start again
    assert tail.read_new() == [{"a": 9}]


def test_jsonl_tail_reads_a_file_replaced_with_the_same_size_again(tmp_path):
    from core.runs import write_jsonl

    path = tmp_path / "results.jsonl"
    write_jsonl(path, [{"index": 2}, {"index": 1}])
    tail = JsonlTail(path)
    assert tail.read_new() == [{"index": 2}, {"index": 1}]
    with open(path, "a") as fh:
        fh.write('{"index": 3}\n')
    assert tail.read_new() == [{"index": 3}]
    write_jsonl(path, [{"index": 1}, {"index": 2}, {"index": 3}])  # an eval's end: question order, same bytes
    assert tail.read_new() == [{"index": 1}, {"index": 2}, {"index": 3}]


def test_follower_reads_events_and_results(tmp_path):
    write_run(tmp_path, "r", "eval", eval_events(n=8, status=None), results=eval_rows(8))
    events, rows = RunFollower(tmp_path / "r").poll()
    assert events[0]["type"] == "start" and len(rows) == 8


def test_tail_lines_keeps_the_last_frame_of_progress_bars(tmp_path):
    log = tmp_path / "job.log"
    log.write_text("one\n\n10%\r50%\r100%\nlast\n")
    assert tail_lines(log, 3) == ["one", "100%", "last"]


def test_claimed_run_folders_never_collide(tmp_path):
    first, second = claim_run_dir(tmp_path, "eval"), claim_run_dir(tmp_path, "eval")
    assert first != second and first.name.endswith("-eval") and second.name.endswith("-eval-2")


def test_runs_whose_pid_is_gone_are_not_reattached(tmp_path):
    write_run(tmp_path, "dead", "pretrain", pretrain_events(status=None, pid=2**22 + 12345))
    assert find_running_jobs(tmp_path) == []


def test_form_options_pass_every_field_without_a_preset():
    options, out = command_options(PretrainTab.fields, defaults(PretrainTab.fields))
    assert options == ["--data", "bookcorpus/bookcorpus", "--rows", "10000", "--epochs", "3", "--model-size", "default",
                       "--tokenizer", "gpt2", "--batch-size", "8", "--optimizer", "auto", "--no-compile", "--processes", "1",
                       "--no-fsdp"]
    assert out is None


def test_the_forms_start_a_multi_process_or_fsdp_job():
    from tui.tabs.finetune import FinetuneTab

    for tab in (PretrainTab, FinetuneTab):
        values = {**defaults(tab.fields), "data": "exams.csv", "processes": "2", "fsdp": True}
        options, _ = command_options(tab.fields, values)
        assert options[-3:] == ["--processes", "2", "--fsdp"]
        with pytest.raises(FormError) as error:  # FSDP on one process: the form says so before anything starts
            command_options(tab.fields, {**values, "processes": "1"})
        assert error.value.field.name == "fsdp" and "Processes to 2 or more" in str(error.value)
        demo = {**preset(tab.fields, tab.demo_values), "processes": "2"}
        assert command_options(tab.fields, demo, tab.demo_values) == (["--demo", "--processes", "2"], None)


def test_demo_preset_passes_only_what_changed():
    values = {**preset(PretrainTab.fields, PretrainTab.demo_values), "epochs": "1", "out": "/tmp/x"}
    assert command_options(PretrainTab.fields, values, PretrainTab.demo_values) == (["--demo", "--epochs", "1"], "/tmp/x")


@pytest.mark.parametrize("field, value", [("limit", "0"), ("limit", "ten"), ("batch-size", "big"), ("model", " ")])
def test_bad_form_values_name_their_field(field, value):
    with pytest.raises(FormError) as error:
        command_options(EvaluateTab.fields, {**defaults(EvaluateTab.fields), field: value})
    assert error.value.field.name == field


def test_eval_batch_size_may_be_auto_or_a_number():
    for value in ("auto", "8"):
        options, _ = command_options(EvaluateTab.fields, {**defaults(EvaluateTab.fields), "batch-size": value})
        assert options[options.index("--batch-size") + 1] == value


def test_pretrain_progress_folds_events_and_estimates_time_left():
    progress = PretrainProgress()
    for event in pretrain_events(steps=60, status=None):
        progress.apply(event)
    assert (progress.step, progress.total_steps, progress.epoch) == (60, 120, 3)
    assert len(progress.losses) == 60 and len(progress.eval_points) == 3
    assert progress.eta() == pytest.approx(75.0)  # 60 steps left at 1.25 s a step
    progress.finish(130, None, [])
    assert progress.status == "stopped" and progress.eta() is None


def test_eval_progress_keeps_one_row_per_question():
    progress = EvalProgress()
    rows = eval_rows(8)
    progress.add_rows(rows)
    progress.add_rows(rows[:2])  # a question logged twice counts once
    assert len(progress.rows) == 8
    assert sum(progress.answer_counts.values()) == 8
    assert progress.correct == sum(r["correct"] for r in rows)


def test_a_job_that_dies_without_summary_is_failed():
    progress = PretrainProgress(status="running")
    progress.finish(1, None, ["Traceback", "ValueError: boom"])
    assert progress.status == "failed" and "code 1" in progress.error


def test_scan_lists_runs_newest_first_with_headlines(sample_runs):
    runs = scan_runs(sample_runs)
    assert [r.status for r in runs] == ["failed", "completed", "stopped", "completed"]
    assert runs[1].headline == "acc 50.0% of 12"
    assert runs[3].headline == "loss 3.412 (eval 3.702)"
    assert runs[3].started == T0 and runs[3].duration == 90.0


def test_a_run_folder_holding_only_job_log_is_listed_as_crashed(tmp_path):
    (tmp_path / "20260101-000000-eval").mkdir()
    (tmp_path / "20260101-000000-eval" / "job.log").write_text("llmlab: error: bad option\n")
    (tmp_path / "not-a-run").mkdir()
    runs = scan_runs(tmp_path)
    assert [(r.kind, r.status) for r in runs] == [("eval", "crashed")]


def test_load_eval_reads_results_from_disk(sample_runs):
    progress = load_progress(read_run(sample_runs / "20260101-140000-eval"))
    assert len(progress.rows) == 12 and progress.status == "completed"


def test_config_diff_lists_only_differences():
    assert config_diff({"lr": 1e-3, "seed": 1, "x": {"y": 1}}, {"lr": 3e-3, "seed": 1, "x": {"y": 2}}) == [
        ("lr", 1e-3, 3e-3), ("x.y", 1, 2)]


def test_headline_is_empty_without_summary():
    assert headline("pretrain", None) == ""


def test_answer_segments_fill_the_width():
    parts = segments({"A": 5, "B": 3, "C": 1, "D": 0, "none": 1}, 20)
    assert sum(cells for _, cells in parts) == 20 and parts[0] == ("A", 10)


def test_chart_helpers():
    points = [(float(i), float(i)) for i in range(10_000)]
    assert len(thin(points)) == 400 and thin(points)[-1] == points[-1]
    assert int_ticks(1, 91) == [20, 40, 60, 80]


def test_formats():
    assert fmt.duration(3725) == "1:02:05" and fmt.duration(65) == "1:05" and fmt.duration(None) == "-"
    assert fmt.rate(12_345) == "12.3k tok/s"
    assert fmt.used_of(48_000, 257_000) == "46.9/251.0 GiB"
    assert json.dumps(fmt.used_of(1_200_000, 3_500_000)) == '"1.14/3.34 TiB"'


def test_a_distributed_job_shows_as_one_job_with_its_process_count():
    progress = PretrainProgress()
    progress.apply({"type": "start", "time": T0, "elapsed": 0.0, "pid": 7, "world_size": 2, "pids": [7, 8]})
    progress.apply({"type": "loss", "elapsed": 1.0, "step": 2, "epoch": 1, "loss": 5.0, "tokens_per_s": 100.0})
    assert progress.world_size == 2 and progress.pid == 7  # rank 0's pid: the app stops the job through it
    assert "2 processes" in progress.stats_parts()
    single = PretrainProgress()
    single.apply({"type": "start", "time": T0, "elapsed": 0.0, "pid": 7})
    assert not any("processes" in part for part in single.stats_parts())


def test_a_distributed_job_lists_its_ranks_and_each_failed_ranks_own_error(tmp_path):
    from core.distributed import record_rank_error

    progress = PretrainProgress(run_dir=tmp_path)
    progress.apply({"type": "start", "time": T0, "elapsed": 0.0, "pid": 7, "world_size": 2, "pids": [7, 8]})
    assert progress.pids == [7, 8] and "2 ranks: rank 0 pid 7, rank 1 pid 8" in progress.take_new_logs()
    record_rank_error(tmp_path, 1, "RuntimeError: rank 1 ran out of host memory", "Traceback ...")
    progress.apply({"type": "end", "elapsed": 3.0, "status": "failed", "error": "rank 1 of 2 failed: RuntimeError: ..."})
    progress.finish(2, None, [])
    assert progress.rank_errors == {1: "RuntimeError: rank 1 ran out of host memory"}
    from core.runlog import RunsReader

    write_run(tmp_path / "runs", "r", "pretrain", pretrain_events(status="failed"))
    record_rank_error(tmp_path / "runs" / "r", 1, "ValueError: bad shard")
    assert load_progress(RunsReader(tmp_path / "runs").folder(tmp_path / "runs" / "r")).rank_errors == {1: "ValueError: bad shard"}


def test_an_fsdp_run_shows_fsdp_and_each_ranks_peak_memory_among_its_figures():
    from tui.runinfo import figures

    rows = dict(figures("pretrain", {"final_loss": 4.6, "world_size": 2, "fsdp": True,
                                     "rank_memory": [{"rank": 0, "peak_rss_mib": 731.5}, {"rank": 1, "peak_rss_mib": 2048.0}]}))
    assert rows["processes"] == "2 (FSDP)" and rows["peak RSS/rank"] == "732 MiB · 2.0 GiB"


def test_a_distributed_run_lists_its_processes_among_its_figures():
    from tui.runinfo import figures

    assert ("processes", "2") in figures("pretrain", {"final_loss": 4.6, "world_size": 2})
    assert not any(label == "processes" for label, _ in figures("pretrain", {"final_loss": 4.6, "world_size": 1}))
