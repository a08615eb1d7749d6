"""Every option of a tokenizer-training run (seed 004: its own 32k byte-level BPE for Chinese)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from core import DEMO_DATA_DIR
from core.errors import UsageError
from core.options import option

DEMO_ZH = DEMO_DATA_DIR / "demo_corpus_zh.txt"


@dataclass
class TokenizerConfig:
    data: str = option("", "Training text: a local .txt (one row per line), .jsonl/.csv/.parquet with a 'text' column, "
                       "or a hub dataset id (streamed). Required unless --demo.", shown="none")
    rows: int = option(200_000, "Train on the first N rows.")
    eval_rows: int = option(1000, "Held-out rows after them, never trained on, where compression is measured.")
    vocab_size: int = option(32_000, "Vocabulary size, the 256 byte symbols and the special tokens included.")
    min_frequency: int = option(2, "A merge must occur this many times.")
    special: list = option(factory=list, help="An extra special token (repeatable); <|endoftext|> is always EOS and pad.",
                           multiple=True, metavar="TOKEN")
    nfkc: bool = option(False, "NFKC-normalize text first (full-width forms fold; such text then does not round-trip).")
    compare: list = option(factory=list, help="Another tokenizer (hub id or folder) to measure beside GPT-2's BPE "
                           "(repeatable).", multiple=True, metavar="TOKENIZER")
    out: str | None = option(None, "New run folder; the tokenizer goes to its tokenizer/.", shown="runs/<timestamp>-tokenizer",
                             metavar="DIR")
    demo: bool = False

    def validate(self) -> None:
        if not str(self.data).strip():
            raise UsageError("--data is required (a text file or hub dataset); or run 'llmlab tokenizer train --demo'")
        for name in ("rows", "vocab_size", "min_frequency"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        if self.eval_rows < 0:
            raise UsageError(f"--eval-rows must be 0 or more (got {self.eval_rows})")
        from core.lm.bpe import BYTES, EOS

        smallest = BYTES + len({EOS, *self.special})
        if self.vocab_size < smallest:
            raise UsageError(f"--vocab-size {self.vocab_size} is below the {BYTES} byte symbols plus the special tokens a "
                             f"byte-level BPE starts with; use at least {smallest}")

    def to_dict(self) -> dict:
        return asdict(self)


def demo_config(**overrides) -> TokenizerConfig:
    """The bundled Chinese corpus of our own and a vocabulary small enough for it."""
    cfg = TokenizerConfig(data=str(DEMO_ZH), rows=5400, eval_rows=600, vocab_size=4000, demo=True)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg
