"""`llmlab math`: accuracy on math questions judged by numeric value, and seed 003's contest score."""

from __future__ import annotations

import signal

import click

from core.launch import distributed_options
from core.maths.config import MathConfig, demo_config
from core.options import click_options, given


@click.command()
@click.option("--demo", is_flag=True, help="Offline demo: bundled math questions and the tiny demo model.")
@click_options(MathConfig)
@distributed_options
def math_command(demo, **options) -> int:
    """Answer math questions (batched greedy) or score saved replies: a reply is right when its last number is."""
    chosen = given(MathConfig, options)
    cfg = demo_config(**chosen) if demo else MathConfig(**chosen)
    cfg.validate()
    from core.distributed import world
    from core.maths.run import run_math

    if not world().main:  # a rank other than 0 answers its share; rank 0 writes and reports the run
        return 1 if run_math(cfg, log=None)["status"] == "failed" else 0
    summary = run_math(cfg, log=click.echo)
    if summary["status"] == "stopped":
        return 128 + (summary.get("stop_signal") or signal.SIGINT)
    return 0 if summary["status"] == "completed" else 1
