"""`llmlab finetune`: LoRA fine-tuning on multiple-choice exams (seeds 001-003), headless; the app runs the same command."""

from __future__ import annotations

import signal

import click

from core.finetune.config import FinetuneConfig, demo_config
from core.launch import distributed_options
from core.options import click_options, given


@click.command()
@click.option("--demo", is_flag=True, help="Offline demo: the bundled exam CSV and a tiny random model (~1 min on 2 cores).")
@click_options(FinetuneConfig)
@click.option("--resume", "resume_dir", default=None, metavar="RUN_DIR",
              help="Continue a stopped fine-tuning run from its newest checkpoint (its own options are reused; "
                   "--processes may differ).")
@distributed_options
def finetune_command(demo, resume_dir, **options) -> int:
    """LoRA-tune a base model on an A-D exam: leak-free splits, before/after test accuracy, the trainable ratio."""
    chosen = given(FinetuneConfig, options)
    checkpoint = None
    if resume_dir:
        if chosen or demo:
            raise click.UsageError("--resume reuses the run's own options; drop the others")
        from core.finetune.run import resume_config

        cfg, checkpoint = resume_config(resume_dir)
    else:
        cfg = demo_config(**chosen) if demo else FinetuneConfig(**chosen)
    cfg.validate()

    from tqdm import tqdm

    from core.distributed import world
    from core.finetune.run import run_finetune

    if not world().main:  # a rank other than 0 trains its share; rank 0 shows and reports the run
        return 1 if run_finetune(cfg, log=None, resume_from=checkpoint)["status"] == "failed" else 0
    bar: list = [None, ""]  # the one progress bar on screen and what it counts

    def show(name: str, total: int, unit: str):
        if bar[1] != name:
            if bar[0] is not None:
                bar[0].close()
            bar[0], bar[1] = tqdm(total=total, unit=unit, desc=name, dynamic_ncols=True), name
        return bar[0]

    def progress(event: dict) -> None:
        kind = event["type"]
        if kind == "plan":
            show("finetune", event["total_steps"], "step")
        elif kind == "loss":
            current = show("finetune", event["total_steps"], "step")
            current.update(event["step"] - current.n)
            current.set_postfix(loss=event["loss"], refresh=False)
        elif kind == "progress":
            current = show(f"test {event['phase']}", event["total"], "q")
            current.update(event["done"] - current.n)
        elif kind == "log":
            tqdm.write(f"llmlab: {event['message']}")

    try:
        summary = run_finetune(cfg, log=tqdm.write, resume_from=checkpoint, progress=progress)
    finally:
        if bar[0] is not None:
            bar[0].close()
    if summary["status"] == "stopped":
        click.echo(f"llmlab: stopped; continue with 'llmlab finetune --resume {summary['run_dir']}'", err=True)
        return 128 + (summary.get("stop_signal") or signal.SIGINT)
    if summary["status"] == "failed":
        click.echo(f"llmlab: error: {summary.get('error')}", err=True)
        return 1
    return 0
