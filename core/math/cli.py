"""`llmlab math`: accuracy on math questions judged by numeric value, and seed 003's contest score."""

from __future__ import annotations

import click

from core.launch import distributed_options, run_for_exit_code
from core.math.config import MathConfig, demo_config
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
    from core.math.run import run_math

    return run_for_exit_code(run_math, cfg)
