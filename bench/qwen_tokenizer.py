"""Build the real Qwen2 tokenizer offline from the `qwen.tiktoken` ranks that the PyPI package dashscope ships.

    python bench/qwen_tokenizer.py [--tiktoken PATH] [--out DIR]   # default out: bench/assets/qwen-tokenizer

The bench's eval model is Qwen2.5-0.5B's architecture with random weights; with this tokenizer
its prompts have the real task's lengths (~112 tokens per moral_scenarios question instead of
~325 with GPT-2's BPE). The ranks are a byte-level BPE: each token's merge is the split of it
into two tokens of lower rank, which transformers' own TikTokenConverter recovers; the
pre-tokenizer is Qwen2's split pattern (single digits), as in Qwen's tokenizer.json. Checked
against the known encoding "Hello world" -> [9707, 1879] before anything is written.

The files stay out of the repository (they are Qwen's vocabulary): bench/assets/ is git-ignored
and the device run carries the folder along.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "assets" / "qwen-tokenizer"
# Qwen2's pre-tokenizer split: like GPT-4's, but digits one at a time.
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
EOS, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
RANKS = 151_643  # ids 0..151642; the three special tokens follow
KNOWN = ("Hello world", [9707, 1879])


def find_tiktoken() -> Path:
    try:
        import dashscope  # noqa: F401  (only its data file is used)

        return Path(dashscope.__file__).parent / "resources" / "qwen.tiktoken"
    except ImportError:
        raise SystemExit("qwen_tokenizer: pass --tiktoken PATH or `pip install dashscope` (it ships resources/qwen.tiktoken)")


def read_ranks(path: Path) -> dict[bytes, int]:
    """The `base64-token rank` lines of a .tiktoken file (what tiktoken.load_tiktoken_bpe reads)."""
    ranks = {}
    for line in path.read_bytes().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def build(tiktoken: Path):
    from tokenizers import AddedToken, Regex, decoders, pre_tokenizers
    from transformers.convert_slow_tokenizer import TikTokenConverter

    class FileConverter(TikTokenConverter):
        @staticmethod
        def load_tiktoken_bpe(path):  # no tiktoken package needed for a local file
            return read_ranks(Path(path))

    ranks = read_ranks(tiktoken)
    if len(ranks) != RANKS:
        raise SystemExit(f"qwen_tokenizer: {tiktoken} has {len(ranks)} ranks, expected {RANKS}")
    tok = FileConverter(str(tiktoken)).tokenizer()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in (EOS, IM_START, IM_END)])
    return tok


def save(tok, out: Path) -> None:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS, unk_token=None,
                                   model_max_length=32768)
    tmp = Path(tempfile.mkdtemp(prefix=".qwen-tokenizer-", dir=out.parent))
    fast.save_pretrained(tmp)
    config = json.loads((tmp / "tokenizer_config.json").read_text(encoding="utf-8"))
    config.update(tokenizer_class="Qwen2Tokenizer", add_bos_token=False, clean_up_tokenization_spaces=False)
    (tmp / "tokenizer_config.json").write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
    (tmp / "SOURCE.txt").write_text("Qwen's BPE ranks (qwen.tiktoken from the PyPI package dashscope), converted by "
                                    "bench/qwen_tokenizer.py; not part of this repository.\n", encoding="utf-8")
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.replace(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiktoken", type=Path, help="path of qwen.tiktoken (default: from the dashscope package)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    tok = build(args.tiktoken or find_tiktoken())
    text, ids = KNOWN
    got = tok.encode(text, add_special_tokens=False).ids
    if got != ids or tok.token_to_id(EOS) != RANKS:
        raise SystemExit(f"qwen_tokenizer: the conversion is wrong: {text!r} -> {got}, expected {ids}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save(tok, args.out)
    print(f"qwen_tokenizer: {len(ranks_of(tok))} tokens written to {args.out}; {text!r} -> {got}")
    return 0


def ranks_of(tok) -> dict:
    return tok.get_vocab(with_added_tokens=True)


if __name__ == "__main__":
    sys.exit(main())
