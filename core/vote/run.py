"""`llmlab vote RUN...`: the majority of several runs' answers, as a run of its own (core/qa/vote.py)."""

from __future__ import annotations

import click

from core.qa.vote import run_vote


@click.command()
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
@click.option("--out", default=None, metavar="PATH", help="New run folder.  [default: runs/<timestamp>-vote]")
def vote_command(runs, out) -> int:
    """Combine eval runs over the same questions by majority vote into a new run folder."""
    summary = run_vote(runs, out, log=click.echo)
    return 0 if summary["status"] == "completed" else 1
