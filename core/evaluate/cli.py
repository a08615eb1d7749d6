"""`llmlab eval`: MMMLU evaluation from the command line.

Imports nothing heavy at module level (core/cli.py registers this command for `llmlab --help`);
torch and transformers load inside the command when it runs.
"""

from __future__ import annotations

import signal

import click

from core.errors import UsageError


def _batch_size(ctx, param, value: str):
    if value == "auto":
        return value
    try:
        number = int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number or 'auto'") from None
    if number < 1:
        raise click.BadParameter("must be at least 1")
    return number


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", default="Qwen/Qwen2.5-0.5B", show_default=True, help="Hub id or local model folder.")
@click.option("--data", default="openai/MMMLU", show_default=True, help="Hub dataset id, or a local MMMLU-shaped CSV (,Question,A,B,C,D,Answer,Subject).")
@click.option("--locale", default="ZH_CN", show_default=True, help="MMMLU language file for a Hub dataset: ZH_CN -> test/mmlu_ZH-CN.csv.")
@click.option("--subject", default="moral_scenarios", show_default=True, help="Subject to keep, or 'all'.")
@click.option("--limit", type=int, default=100, show_default=True, help="First N questions after the subject filter.")
@click.option("--max-new-tokens", type=int, default=512, show_default=True)
@click.option("--batch-size", default="auto", show_default=True, callback=_batch_size, help="Number, or auto (every question in one batch if memory allows, on a GPU or a CPU).")
@click.option("--dtype", type=click.Choice(["auto", "bf16", "fp16", "fp32"]), default="auto", show_default=True, help="auto: bf16 on a GPU that supports it, else fp32.")
@click.option("--mode", type=click.Choice(["generate", "logprob"]), default="generate", show_default=True, help="generate: greedy reply, answer read from its start. logprob: most likely of A/B/C/D as the next token.")
@click.option("--out", type=click.Path(), default=None, help="New run folder (default runs/<timestamp>-eval).")
@click.option("--demo", is_flag=True, help="Offline demo: tiny random-weight Qwen2 on bundled Chinese questions.")
@click.option("--stop-at-answer", is_flag=True, help="End a row once its answer letter is settled (changes outputs and timings).")
@click.option("--static-cache/--no-static-cache", default=False, show_default=True, help="Static KV cache (no dropping of finished rows).")
@click.option("--compile/--no-compile", "compile_", default=False, show_default=True, help="torch.compile the decode step (GPU only; implies --static-cache).")
@click.option("--cuda-graphs/--no-cuda-graphs", default=False, show_default=True, help="CUDA graphs: compile mode reduce-overhead, or graphs in continuous batching (GPU only).")
@click.option("--backend", type=click.Choice(["generate", "continuous"]), default="generate", show_default=True, help="generate: batched model.generate. continuous: transformers continuous batching.")
@click.option("--free-finished/--no-free-finished", default=True, show_default=True, help="Drop finished rows from the batch and KV cache.")
@click.option("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice; 1 for --demo).")
@click.option("--resume", "resume_dir", default=None, metavar="RUN_DIR", help="Continue a stopped eval run: questions it answered are kept, the rest run (its own options are reused).")
@click.pass_context
def eval_command(ctx, model, data, locale, subject, limit, max_new_tokens, batch_size, dtype, mode, out, demo,
                 stop_at_answer, static_cache, compile_, cuda_graphs, backend, free_finished, threads, resume_dir):
    """Evaluate a causal LM on MMMLU (default: Qwen2.5-0.5B, Chinese, moral_scenarios, first 100).

    Writes config.json, events.jsonl, results.jsonl, summary.json and report.md to a new run folder.
    """
    from core.evaluate.run import EvalConfig

    source = ctx.get_parameter_source
    if resume_dir:
        others = [p.opts[0] for p in ctx.command.params
                  if p.name != "resume_dir" and source(p.name) is click.core.ParameterSource.COMMANDLINE]
        if others:
            raise click.UsageError(f"--resume reuses the run's own options; drop {', '.join(others)}")
        from core.evaluate.run import resume_config

        config = resume_config(resume_dir)
        return _finish_command(ctx, config, resume=True)
    if demo:
        for name in ("model", "data", "locale"):
            if source(name) is click.core.ParameterSource.COMMANDLINE:
                raise UsageError(f"--demo brings its own model and data; drop --{name}, or drop --demo")
    config = EvalConfig(
        model=model, data=data, locale=locale, subject=subject, limit=limit, max_new_tokens=max_new_tokens,
        batch_size=batch_size, dtype=dtype, mode=mode, out=out, demo=demo, stop_at_answer=stop_at_answer,
        static_cache=static_cache or compile_, compile=compile_, cuda_graphs=cuda_graphs, backend=backend,
        free_finished=free_finished, threads=threads,
    )
    return _finish_command(ctx, config)


def _finish_command(ctx, config, resume: bool = False):
    summary = _run_with_progress(config, resume)
    _print_summary(summary)
    if summary["status"] == "stopped":
        click.echo(f"llmlab: stopped after {summary['n']} of {summary['total']} questions; results so far are in {summary['run_dir']}; "
                   f"continue with 'llmlab eval --resume {summary['run_dir']}'", err=True)
        ctx.exit(128 + (summary.get("stop_signal") or signal.SIGINT))


def _run_with_progress(config, resume: bool = False):
    from tqdm import tqdm

    from core.evaluate.run import run_eval

    bar = None

    def progress(event):
        nonlocal bar
        kind = event["type"]
        if kind == "start":
            if config.demo:
                click.echo("llmlab eval --demo: a tiny Qwen2 with RANDOM weights on bundled questions; the accuracy means nothing.", err=True)
            click.echo(f"run folder: {event['run_dir']}", err=True)
            bar = tqdm(total=event["total"], unit="q", desc="eval", dynamic_ncols=True, file=click.get_text_stream("stderr"))
        elif kind == "resume" and bar is not None:
            bar.write(f"llmlab: resuming: {event['reused']} of {event['total']} questions already answered", file=click.get_text_stream("stderr"))
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
    timing = f"time {s['total_seconds']:.1f} s (load {s['load_seconds'] or 0:.1f} s, {'generate' if s['mode'] == 'generate' else 'score'} {s['generate_seconds'] or 0:.1f} s"
    if s["tokens_per_second"] is not None and s["tokens_generated"]:
        if s.get("reused_rows"):
            timing += f", {s['tokens_this_run']} new tokens at {s['tokens_per_second']:.0f} tokens/s"
        else:
            timing += f", {s['tokens_generated']} tokens at {s['tokens_per_second']:.0f} tokens/s"
    click.echo(timing + f"; batch {s['batch_size']}, {s['dtype']})")
    counts = s["answer_counts"]
    click.echo("answers: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    click.echo(f"report: {s['run_dir']}/report.md")
