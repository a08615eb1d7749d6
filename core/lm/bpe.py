"""A byte-level BPE trained with Hugging Face `tokenizers`, saved so AutoTokenizer loads it, and measured.

Byte-level, so every string decodes back exactly: the 256 byte symbols are in the vocabulary from
the start (no unknown token ever), nothing is added in front of the text, and decoding neither
strips nor "cleans up" spaces. Seed 004 trained its own 32k BPE because GPT-2's English merges
spend about two tokens per Chinese character; `compression` measures that on held-out text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from core.errors import UsageError

EOS = "<|endoftext|>"
BYTES = 256  # the byte alphabet every byte-level vocabulary starts with


def train_bpe(rows: Iterable[str], vocab_size: int, min_frequency: int = 2, extra_special: tuple[str, ...] = (),
              nfkc: bool = False, length: int | None = None):
    """A PreTrainedTokenizerFast with `<|endoftext|>` as EOS and pad, trained on `rows`."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = [EOS, *[t for t in extra_special if t != EOS]]
    if vocab_size < BYTES + len(special):
        raise UsageError(f"--vocab-size {vocab_size} is below the {BYTES} byte symbols plus {len(special)} special "
                         f"token(s) a byte-level BPE starts with; use at least {BYTES + len(special)}")
    tok = Tokenizer(models.BPE())
    if nfkc:  # folds full-width forms and compatibility characters; such text then no longer round-trips
        tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=special,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(rows, trainer=trainer, length=length)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS, bos_token=EOS,
                                   clean_up_tokenization_spaces=False, model_max_length=1_000_000)
    if extra_special:
        fast.add_special_tokens({"additional_special_tokens": [t for t in extra_special if t != EOS]})
    return fast


def save_tokenizer(tok, folder: Path) -> None:
    """tokenizer.json and tokenizer_config.json: AutoTokenizer.from_pretrained(folder) gives it back."""
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(folder)


def compression(tok, texts: list[str]) -> dict:
    """Tokens per character and per UTF-8 byte of `texts`, without special tokens."""
    ids = tok(texts, add_special_tokens=False)["input_ids"]
    tokens = sum(len(row) for row in ids)
    chars = sum(len(t) for t in texts)
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    return {"tokens": tokens, "chars": chars, "bytes": nbytes,
            "tokens_per_char": round(tokens / chars, 4) if chars else None,
            "tokens_per_byte": round(tokens / nbytes, 4) if nbytes else None}


def _byte_level_symbols() -> dict[str, int]:
    """Symbol -> byte of the byte-level alphabet (GPT-2's scheme, which `tokenizers` ByteLevel uses).

    Printable Latin-1 bytes stand for themselves; the other 68 bytes are given the code points
    from 256 up, in byte order. Written here because tokenizers exposes the alphabet but not
    the mapping, and the report needs it to show a piece of a character as its bytes.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols = {chr(b): b for b in printable}
    extra = 0
    for b in range(256):
        if b not in printable:
            symbols[chr(256 + extra)] = b
            extra += 1
    return symbols


_BYTE_OF_SYMBOL = _byte_level_symbols()


def segmentation(tok, text: str) -> list[str]:
    """How `text` is cut: each token decoded on its own.

    A token holding only part of a multi-byte character would decode as U+FFFD; it is shown as
    its bytes instead (`<e5 bc>`), which is what a byte-level BPE really stored.
    """
    ids = tok(text, add_special_tokens=False)["input_ids"]
    pieces = []
    for i, symbol in zip(ids, tok.convert_ids_to_tokens(ids)):
        piece = tok.decode([i])
        if "\ufffd" in piece and symbol and all(ch in _BYTE_OF_SYMBOL for ch in symbol):
            piece = "<" + " ".join(f"{_BYTE_OF_SYMBOL[ch]:02x}" for ch in symbol) + ">"
        pieces.append(piece)
    return pieces


def round_trip_failures(tok, texts: list[str]) -> list[str]:
    """The texts that do not decode back to themselves."""
    ids = tok(texts, add_special_tokens=False)["input_ids"]
    return [t for t, row in zip(texts, ids) if tok.decode(row, clean_up_tokenization_spaces=False) != t]


def is_trained_tokenizer(folder: Path) -> Path | None:
    """The tokenizer folder of a `llmlab tokenizer train` run folder (or the folder itself), or None."""
    folder = Path(folder)
    for candidate in (folder / "tokenizer", folder):
        if (candidate / "tokenizer.json").is_file():
            return candidate
    return None


def measure(tokenizers: dict, held_out: list[str]) -> dict:
    """{name: compression figures} on the held-out rows (core.lm.bpe.compression)."""
    return {name: compression(tok, held_out) for name, tok in tokenizers.items()}


def comparison_tokenizers(names: list[str], notes: list[str]) -> dict:
    """GPT-2's BPE (bundled, so always there) and each --compare tokenizer, by name."""
    from core.lm.tokenizers import load_tokenizer

    out = {}
    for name in ["gpt2", *names]:
        try:
            out["gpt2 (GPT-2 BPE)" if name == "gpt2" else name] = load_tokenizer(name, "--compare")[0]
        except UsageError as exc:
            if name == "gpt2":
                notes.append(f"GPT-2's BPE is not available for the comparison ({exc})")
            else:
                raise
    return out
