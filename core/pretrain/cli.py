"""`llmlab pretrain`: the seed task's GPT-2 pretraining, headless (the app runs this same command).

Its options are PretrainConfig's fields (core/options.py), so defaults and help live in one place.
"""

from __future__ import annotations

import signal

import click

from core.launch import distributed_options
from core.options import click_options, given
from core.pretrain.config import DEMO_LANGUAGES, PretrainConfig, demo_config


@click.command(context_settings={"show_default": True})
@click.option("--demo", type=click.Choice(DEMO_LANGUAGES), is_flag=False, flag_value="en", default=None,
              help="Offline demo: 'en' (the default) a BookCorpus-shaped sample with GPT-2's BPE; 'zh' a Chinese sample "
                   "with its own byte-level BPE and generation samples (~1 min on 2 cores).")
@click_options(PretrainConfig)
@click.option("--resume", "resume_dir", default=None,
              help="Continue a stopped pretraining run from its newest checkpoint (its own options are reused; "
                   "--processes may differ).")
@distributed_options
def pretrain_command(demo, resume_dir, **options) -> int:
    """Pretrain GPT-2 from scratch (seed task: first 10,000 BookCorpus rows, 3 epochs)."""
    chosen = given(PretrainConfig, options)
    checkpoint = None
    if resume_dir:
        if chosen or demo:
            raise click.UsageError("--resume reuses the run's own options; drop the others")
        from core.pretrain.run import resume_config

        cfg, checkpoint = resume_config(resume_dir)
    else:
        cfg = demo_config(demo, **chosen) if demo else PretrainConfig(**chosen)
    cfg.validate()  # before importing torch, so a typo costs nothing

    from tqdm import tqdm

    from core.distributed import world
    from core.pretrain.run import run_pretrain

    bars: list[tqdm] = []  # made at the first step, once the step count is known
    main = world().main  # with several processes only rank 0 shows progress and prints

    def on_step(step: int, total: int) -> None:
        if not main:
            return
        if not bars:
            bars.append(tqdm(total=total, unit="step", desc="pretrain", dynamic_ncols=True))
        bars[0].update(step - bars[0].n)

    try:
        summary = run_pretrain(cfg, on_step=on_step, log=tqdm.write if main else None, resume_from=checkpoint)
    finally:
        for bar in bars:
            bar.close()
    if not main:  # rank 0 reports the run; a rank that stopped with it has nothing to add
        return 1 if summary["status"] == "failed" else 0
    if summary["status"] == "stopped":
        return 128 + (summary.get("stop_signal") or signal.SIGINT)
    if summary["status"] == "failed":
        click.echo(f"llmlab: error: {summary.get('error')}", err=True)
        return 1
    if summary.get("final_loss") is not None:
        click.echo(f"final loss {summary['final_loss']:.4f}; eval loss "
                   f"{summary['eval_loss'] if summary['eval_loss'] is None else format(summary['eval_loss'], '.4f')}; "
                   f"total {summary['total_seconds']:.1f} s (train {summary['train_seconds']:.1f} s)")
    return 0
