"""`llmlab eval`: MMMLU evaluation from the command line.

Its options are EvalConfig's fields (core/options.py). Imports nothing heavy at module level
(core/cli.py registers this command for `llmlab --help`); torch and transformers load inside the
command when it runs.
"""

from __future__ import annotations

import signal

import click

from core.errors import UsageError
from core.eval.config import EvalConfig
from core.launch import distributed_options
from core.options import click_options, given


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click_options(EvalConfig)
@click.option("--demo", is_flag=True, help="Offline demo: tiny random-weight Qwen2 on bundled Chinese questions.")
@click.option("--resume", "resume_dir", default=None, metavar="RUN_DIR",
              help="Continue a stopped eval run: questions it answered are kept, the rest run (its own options are reused).")
@distributed_options
@click.pass_context
def eval_command(ctx, demo, resume_dir, **options):
    """Evaluate a causal LM on MMMLU (default: Qwen2.5-0.5B, Chinese, moral_scenarios, first 100).

    Writes config.json, events.jsonl, results.jsonl, summary.json and report.md to a new run folder.
    """
    chosen = given(EvalConfig, options)
    if resume_dir:
        if chosen or demo:
            names = ["--" + k.replace("_", "-") for k in chosen] + (["--demo"] if demo else [])
            raise click.UsageError(f"--resume reuses the run's own options; drop {', '.join(names)}")
        from core.eval.resume import resume_config

        return _finish_command(ctx, resume_config(resume_dir), resume=True)
    if demo:
        for name in ("model", "data", "locale"):
            if name in chosen:
                raise UsageError(f"--demo brings its own model and data; drop --{name}, or drop --demo")
    config = EvalConfig(demo=demo, **chosen)
    config.validate()
    if len(config.adapter) > 1:
        from core.distributed import world

        if world().distributed:
            raise UsageError("several adapters are evaluated over one loaded base in one process; drop --processes, "
                             "or evaluate each adapter in a run of its own")
        return _several_adapters(config)
    return _finish_command(ctx, config)


def _several_adapters(config) -> int:
    """One run per adapter over one loaded base, then their vote."""
    from core.eval.multi import run_eval_adapters

    summaries, vote = run_eval_adapters(config, log=click.echo)
    for s in summaries:
        click.echo(f"{s['adapter']}: accuracy {s['accuracy']:.1%} ({s['correct']}/{s['n']}) -> {s['run_dir']}")
    click.echo(f"vote of {len(summaries)}: accuracy {vote['accuracy']:.1%} ({vote['correct']}/{vote['n']}) -> {vote['run_dir']}")
    return 0


def _finish_command(ctx, config, resume: bool = False):
    from core.distributed import world

    if not world().main:  # a rank other than 0 answers its share; rank 0 reports the run
        from core.eval.run import run_eval

        return 1 if run_eval(config, resume=resume)["status"] == "failed" else 0
    summary = _run_with_progress(config, resume)
    _print_summary(summary)
    if summary["status"] == "stopped":
        click.echo(f"llmlab: stopped after {summary['n']} of {summary['total']} questions; results so far are in "
                   f"{summary['run_dir']}; continue with 'llmlab eval --resume {summary['run_dir']}'", err=True)
        ctx.exit(128 + (summary.get("stop_signal") or signal.SIGINT))


def _run_with_progress(config, resume: bool = False):
    from tqdm import tqdm

    from core.eval.run import run_eval

    bar = None

    def progress(event):
        nonlocal bar
        kind = event["type"]
        if kind == "start":
            if config.demo:
                click.echo("llmlab eval --demo: a tiny Qwen2 with RANDOM weights on bundled questions; "
                           "the accuracy means nothing.", err=True)
            click.echo(f"run folder: {event['run_dir']}", err=True)
            bar = tqdm(total=event["total"], unit="q", desc="eval", dynamic_ncols=True, file=click.get_text_stream("stderr"))
        elif kind == "resume" and bar is not None:
            bar.write(f"llmlab: resuming: {event['reused']} of {event['total']} questions already answered",
                      file=click.get_text_stream("stderr"))
            bar.update(event["reused"])
        elif kind == "progress" and bar is not None:
            bar.update(event["done"] - bar.n)
            bar.set_postfix(tok_s=event["tokens_per_s"], bs=event["batch_size"], refresh=False)
        elif kind == "log":
            message = f"llmlab: {event['message']}"
            if bar is not None:
                bar.write(message, file=click.get_text_stream("stderr"))  # printed above the bar, not through it
            else:
                click.echo(message, err=True)
        elif kind == "end" and bar is not None:
            bar.close()

    try:
        return run_eval(config, progress=progress, resume=resume)
    finally:
        if bar is not None:
            bar.close()


def _print_summary(s: dict) -> None:
    acc = "-" if s["accuracy"] is None else f"{s['accuracy']:.1%}"
    demo = " [DEMO: random weights, meaningless]" if s.get("demo") else ""
    click.echo(f"accuracy {acc} ({s['correct']}/{s['n']}, mode {s['mode']}){demo}")
    phase = "generate" if s["mode"] == "generate" else "score"
    timing = f"time {s['total_seconds']:.1f} s (load {s['load_seconds'] or 0:.1f} s, {phase} {s['generate_seconds'] or 0:.1f} s"
    if s["tokens_per_second"] is not None and s["tokens_generated"]:
        if s.get("reused_rows"):
            timing += f", {s['tokens_this_run']} new tokens at {s['tokens_per_second']:.0f} tokens/s"
        else:
            timing += f", {s['tokens_generated']} tokens at {s['tokens_per_second']:.0f} tokens/s"
    click.echo(timing + f"; batch {s['batch_size']}, {s['dtype']})")
    counts = s["answer_counts"]
    click.echo("answers: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    click.echo(f"report: {s['run_dir']}/report.md")
