"""`llmlab squad`: SQuAD v1.1 exact match and F1 of a model (or of a saved predictions file)."""

from __future__ import annotations

import signal

import click

from core.options import click_options, given
from core.squad.config import SquadConfig, demo_config


@click.command()
@click.option("--demo", is_flag=True, help="Offline demo: bundled SQuAD-shaped questions and the tiny demo model.")
@click_options(SquadConfig)
def squad_command(demo, **options) -> int:
    """Answer SQuAD questions (batched greedy) or score saved answers, with the official v1.1 EM and F1."""
    chosen = given(SquadConfig, options)
    cfg = demo_config(**chosen) if demo else SquadConfig(**chosen)
    cfg.validate()
    from core.squad.run import run_squad

    summary = run_squad(cfg, log=click.echo)
    if summary["status"] == "stopped":
        return 128 + (summary.get("stop_signal") or signal.SIGINT)
    return 0 if summary["status"] == "completed" else 1
