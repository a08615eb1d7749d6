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
    name="tokenizer", noun="a tokenizer run", command="core.tokenizer.cli:tokenizer_group",
    help="Train a byte-level BPE and measure its compression against GPT-2's.",
    figures=("vocab_size", "rows", "train_seconds", "chars_per_second", "round_trip_failures", "total_seconds"),
    headline=headline,
)
