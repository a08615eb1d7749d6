"""`llmlab eval` (placeholder until the evaluation engine lands)."""

from __future__ import annotations

import click


@click.command()
def eval_command() -> None:
    """Evaluate a causal LM on MMMLU (not built yet)."""
    raise click.ClickException("llmlab eval is not built yet")
