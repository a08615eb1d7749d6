"""Byte-level BPE tokenizers of your own (seed 004), trained with Hugging Face tokenizers and measured."""

from core.kinds import Kind


def headline(summary: dict) -> str:
    figures = (summary.get("compression") or {}).get("llmlab BPE (this run)")
    if not figures:
        return ""
    gpt2 = (summary.get("compression") or {}).get("gpt2 (GPT-2 BPE)") or {}
    text = f"{summary.get('vocab_size'):,} tokens, {figures['tokens_per_char']} tok/char"
    return text + (f" (GPT-2 {gpt2['tokens_per_char']})" if gpt2 else "")


KIND = Kind(
    name="tokenizer", noun="a tokenizer run", config="core.tokenizer.config:TokenizerConfig",
    job="core.tokenizer.run:TokenizerJob", demo="core.tokenizer.config:demo_config",
    demo_help="Offline demo: the bundled Chinese corpus of our own, a 4,000-token vocabulary.",
    group="tokenizer", group_help="Train a tokenizer and measure how well it compresses held-out text.", command="train",
    help="Train a byte-level BPE and measure its compression against GPT-2's.",
    figures=("vocab_size", "rows", "train_seconds", "chars_per_second", "round_trip_failures", "total_seconds"),
    headline=headline,
)
