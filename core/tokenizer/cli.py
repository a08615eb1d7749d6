"""`llmlab tokenizer train`: a byte-level BPE of your own on any llmlab data source."""

from __future__ import annotations

import click

from core.options import click_options, given
from core.tokenizer.config import TokenizerConfig, demo_config


@click.group("tokenizer")
def tokenizer_group() -> None:
    """Train a tokenizer and measure how well it compresses held-out text."""


@tokenizer_group.command("train")
@click.option("--demo", is_flag=True, help="Offline demo: the bundled Chinese corpus of our own, a 4,000-token vocabulary.")
@click_options(TokenizerConfig)
def train_command(demo, **options) -> int:
    """Train a byte-level BPE (Hugging Face tokenizers) and compare its compression with GPT-2's BPE."""
    chosen = given(TokenizerConfig, options)
    cfg = demo_config(**chosen) if demo else TokenizerConfig(**chosen)
    cfg.validate()
    from core.tokenizer.run import run_tokenizer

    summary = run_tokenizer(cfg, log=click.echo)
    return 0 if summary["status"] == "completed" else 1
