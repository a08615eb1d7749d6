"""`llmlab data preview`: what a corpus looks like to a tokenizer before anything trains on it.

First rows, the row count, characters and tokens per row, a length histogram and how many rows a
block size would cut across blocks: seed 004 learned late that short rows and a 1024-token context
do not go together. The app's Pretrain tab shows the same (key p).
"""

from __future__ import annotations

import statistics

import click

HISTOGRAM_BINS = 8


def _stats(values: list[int]) -> dict:
    ordered = sorted(values)
    return {"mean": round(statistics.fmean(values), 1), "median": statistics.median(values),
            "p95": ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], "max": ordered[-1]} if values else {}


def histogram(values: list[int], bins: int = HISTOGRAM_BINS) -> list[tuple[int, int, int]]:
    """(low, high, count) over equal-width bins from 0 to the largest value."""
    if not values:
        return []
    top = max(values)
    width = max(1, -(-(top + 1) // bins))
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, v // width)] += 1
    return [(i * width, (i + 1) * width - 1, c) for i, c in enumerate(counts)]


def rows_cut(lengths: list[int], block_size: int) -> int:
    """Rows that packing cuts in two: concatenated end to end, the ones a block boundary falls inside."""
    cut, start = 0, 0
    for n in lengths:
        end = start + n
        cut += (end - 1) // block_size > start // block_size  # first and last token in different blocks
        start = end
    return cut


def preview(data: str, tokenizer: str = "gpt2", block_size: int = 128, rows: int = 10_000, head: int = 5) -> dict:
    """Figures of the first `rows` rows of `data` as `tokenizer` sees them (one UsageError for bad input)."""
    from core.corpus import load_corpus
    from core.errors import UsageError
    from core.lm.tokenizers import load_tokenizer

    if block_size < 2 or rows < 1:
        raise UsageError("--block-size must be at least 2 and --rows at least 1")
    corpus = load_corpus(data, rows, 0)
    tok, source = load_tokenizer(tokenizer)
    texts = corpus.train
    tokens = [len(ids) + 1 for ids in tok(texts, add_special_tokens=False)["input_ids"]]  # +1: the EOS each row gets
    chars = [len(t) for t in texts]
    total = sum(tokens)
    return {
        "rows_cut_by_packing": rows_cut(tokens, block_size),
        "data": corpus.source, "tokenizer": source, "rows": len(texts), "first_rows": texts[:head],
        "chars_per_row": _stats(chars), "tokens_per_row": _stats(tokens), "tokens": total,
        "tokens_per_char": round(total / max(1, sum(chars)), 4), "histogram": histogram(tokens),
        "block_size": block_size, "rows_longer_than_block": sum(t > block_size for t in tokens),
        "rows_per_block": round(block_size / statistics.fmean(tokens), 1) if tokens else None,
        "blocks": -(-total // block_size),
    }


def render(p: dict) -> list[str]:
    """The preview as plain lines (the CLI prints them; the app shows them)."""
    bar_max = max((c for _, _, c in p["histogram"]), default=1) or 1
    lines = [f"{p['data']}: {p['rows']:,} rows read; tokenizer {p['tokenizer']}", "", "first rows:"]
    lines += [f"  {i + 1}. {row[:100]}" for i, row in enumerate(p["first_rows"])]
    c, t = p["chars_per_row"], p["tokens_per_row"]
    lines += ["", f"characters per row: mean {c['mean']}, median {c['median']}, p95 {c['p95']}, max {c['max']}",
              f"tokens per row (EOS included): mean {t['mean']}, median {t['median']}, p95 {t['p95']}, max {t['max']}",
              f"{p['tokens']:,} tokens, {p['tokens_per_char']} per character", "", "tokens per row:"]
    lines += [f"  {low:>5}-{high:<5} {'█' * max(1, round(30 * n / bar_max)) if n else '':<30} {n:,}"
              for low, high, n in p["histogram"]]
    lines += ["", f"block size {p['block_size']}: {p['blocks']:,} packed blocks, about {p['rows_per_block']} rows per block; "
              f"packing cuts {p['rows_cut_by_packing']:,} rows across two blocks, and {p['rows_longer_than_block']:,} rows "
              f"are longer than a whole block"]
    return lines


@click.group("data")
def data_group() -> None:
    """Look at a corpus before training on it."""


@data_group.command("preview")
@click.option("--data", required=True, help="A local .txt/.jsonl/.csv/.parquet (a 'text' column) or a hub dataset id.")
@click.option("--tokenizer", default="gpt2", show_default=True, help="Hub id, local folder or tokenizer run folder.")
@click.option("--block-size", type=int, default=128, show_default=True)
@click.option("--rows", type=int, default=10_000, show_default=True, help="Read the first N rows.")
def preview_command(data, tokenizer, block_size, rows) -> int:
    """First rows, row count, characters and tokens per row, a length histogram, rows a block size would cut."""
    for line in render(preview(data, tokenizer, block_size, rows)):
        click.echo(line)
    return 0
