"""`llmlab squad`: SQuAD v1.1 exact match and F1 of a model (or of a saved predictions file)."""

from __future__ import annotations

import click

from core.launch import distributed_options, run_for_exit_code
from core.options import click_options, given
from core.squad.config import SquadConfig, demo_config


@click.command()
@click.option("--demo", is_flag=True, help="Offline demo: bundled SQuAD-shaped questions and the tiny demo model.")
@click_options(SquadConfig)
@distributed_options
def squad_command(demo, **options) -> int:
    """Answer SQuAD questions (batched greedy) or score saved answers, with the official v1.1 EM and F1."""
    chosen = given(SquadConfig, options)
    cfg = demo_config(**chosen) if demo else SquadConfig(**chosen)
    cfg.validate()
    from core.squad.run import run_squad

    return run_for_exit_code(run_squad, cfg)
