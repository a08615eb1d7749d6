"""`llmlab pretrain`: the seed task's GPT-2 pretraining, headless (the app runs this same command)."""

from __future__ import annotations

import signal

import click

from core.pretrain.config import MODEL_PRESETS, PretrainConfig, demo_config

_DEFAULTS = PretrainConfig()


@click.command(context_settings={"show_default": True})
@click.option("--demo", is_flag=True, help="Offline demo: bundled sample corpus, tiny model, bundled tokenizer (~1 min on 2 cores).")
@click.option("--data", default=None, help=f"Hub dataset id (streamed) or a local .txt/.jsonl/.csv/.parquet file with a 'text' column.  [default: {_DEFAULTS.data}]")
@click.option("--rows", type=int, default=None, help=f"Train on exactly the first N rows.  [default: {_DEFAULTS.rows}]")
@click.option("--eval-rows", type=int, default=None, help=f"Held-out rows taken after the training rows.  [default: {_DEFAULTS.eval_rows}]")
@click.option("--epochs", type=int, default=None, help=f"Passes over the training rows.  [default: {_DEFAULTS.epochs}]")
@click.option("--tokenizer", default=None, help=f"Hub id or local dir; 'gpt2' falls back to the bundled exact GPT-2 BPE offline.  [default: {_DEFAULTS.tokenizer}]")
@click.option("--model-size", default=None, help=f"{' | '.join(MODEL_PRESETS)} ('default' is GPT2Config() unchanged, 124M).  [default: {_DEFAULTS.model_size}]")
@click.option("--block-size", type=int, default=None, help=f"Tokens per packed sequence.  [default: {_DEFAULTS.block_size}]")
@click.option("--batch-size", type=int, default=None, help=f"Sequences per optimizer step.  [default: {_DEFAULTS.batch_size}]")
@click.option("--lr", type=float, default=None, help=f"Peak learning rate (warmup, then cosine decay).  [default: {_DEFAULTS.lr}]")
@click.option("--seed", type=int, default=None, help=f"Random seed.  [default: {_DEFAULTS.seed}]")
@click.option("--compile/--no-compile", "compile_", default=None, help="torch.compile the model (compile time is counted).  [default: no-compile]")
@click.option("--log-every", type=int, default=None, help=f"Read the loss back every K steps.  [default: {_DEFAULTS.log_every}]")
@click.option("--no-token-cache", is_flag=True, help="Tokenize again instead of reusing cached token ids.")
@click.option("--micro-batch-size", type=int, default=None, help="Sequences per forward pass; 0 = whole batch (halved automatically on out-of-memory).  [default: 0]")
@click.option("--save-every", type=int, default=None, help="Checkpoint every N optimizer steps and at the end (0 = off).  [default: 0]")
@click.option("--save-minutes", type=float, default=None, help="Also checkpoint after this many minutes since the last one (0 = off).  [default: 10]")
@click.option("--resume", "resume_dir", default=None, help="Continue a stopped pretraining run from its newest checkpoint (its own options are reused).")
@click.option("--out", default=None, help="Run directory (must not exist yet).  [default: runs/<timestamp>-pretrain]")
def pretrain_command(demo, data, rows, eval_rows, epochs, tokenizer, model_size, block_size, batch_size, lr, seed,
                     compile_, log_every, no_token_cache, micro_batch_size, save_every, save_minutes, resume_dir,
                     out) -> int:
    """Pretrain GPT-2 from scratch (seed task: first 10,000 BookCorpus rows, 3 epochs)."""
    given = {"data": data, "rows": rows, "eval_rows": eval_rows, "epochs": epochs, "tokenizer": tokenizer,
             "model_size": model_size, "block_size": block_size, "batch_size": batch_size, "lr": lr, "seed": seed,
             "compile": compile_, "log_every": log_every, "micro_batch_size": micro_batch_size,
             "save_every": save_every, "save_minutes": save_minutes, "out": out}
    given = {k: v for k, v in given.items() if v is not None}
    if no_token_cache:
        given["token_cache"] = False
    checkpoint = None
    if resume_dir:
        if given or demo:
            raise click.UsageError("--resume reuses the run's own options; drop the others")
        from core.pretrain.run import resume_config

        cfg, checkpoint = resume_config(resume_dir)
    else:
        cfg = demo_config(**given) if demo else PretrainConfig(**given)
    cfg.validate()  # before importing torch, so a typo costs nothing

    from tqdm import tqdm

    from core.pretrain.run import run_pretrain

    bars: list[tqdm] = []  # made at the first step, once the step count is known

    def on_step(step: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="step", desc="pretrain", dynamic_ncols=True))
        bars[0].update(step - bars[0].n)

    try:
        summary = run_pretrain(cfg, on_step=on_step, log=tqdm.write, resume_from=checkpoint)
    finally:
        for bar in bars:
            bar.close()
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
