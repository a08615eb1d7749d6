"""The offline GPT-2 tokenizer must be the real GPT-2 BPE, id for id."""

from __future__ import annotations

import pytest

from core.errors import UsageError
from core.lm.tokenizers import bundled_gpt2_tokenizer, load_tokenizer

# Ids of the published GPT-2 vocabulary (openai-community/gpt2).
KNOWN_IDS = {
    "Hello world": [15496, 995],
    "Hello, world!": [15496, 11, 995, 0],
    "The quick brown fox": [464, 2068, 7586, 21831],
    "<|endoftext|>": [50256],
}


@pytest.fixture(scope="module")
def tok():
    return bundled_gpt2_tokenizer()


def test_bundled_tokenizer_has_gpt2_vocabulary_and_eos(tok):
    assert len(tok) == 50257
    assert tok.eos_token == "<|endoftext|>" and tok.eos_token_id == 50256


@pytest.mark.parametrize("text,ids", KNOWN_IDS.items())
def test_bundled_tokenizer_matches_published_gpt2_ids(tok, text, ids):
    assert tok(text, add_special_tokens=False)["input_ids"] == ids


def test_gpt2_falls_back_to_the_bundled_bpe_offline():
    tok, source = load_tokenizer("gpt2")
    assert len(tok) == 50257 and tok("Hello world")["input_ids"] == [15496, 995]
    assert "bundled" in source or "cache" in source


def test_local_tokenizer_dir_round_trips(tok, tmp_path):
    tok.save_pretrained(tmp_path / "tok")
    loaded, source = load_tokenizer(str(tmp_path / "tok"))
    assert loaded("Hello world")["input_ids"] == [15496, 995] and "local" in source


def test_unknown_tokenizer_offline_is_a_usage_error():
    with pytest.raises(UsageError, match="unreachable"):
        load_tokenizer("someone/not-cached-tokenizer")
