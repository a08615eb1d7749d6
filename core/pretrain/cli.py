"""`llmlab pretrain` (placeholder)."""

from __future__ import annotations

import click


@click.command()
def pretrain_command() -> None:
    """Pretrain GPT-2 (not built yet)."""
    raise click.ClickException("llmlab pretrain is not built yet")
