"""`llmlab generate` streams a model's continuation; `llmlab data preview` shows a corpus as a tokenizer sees it."""

from __future__ import annotations

import pytest

from core import DEMO_DATA_DIR
from core.cli import main

ZH = str(DEMO_DATA_DIR / "demo_corpus_zh.txt")


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("llmlab: error:")]


@pytest.fixture(scope="module")
def model_run(tmp_path_factory):
    """A finished tiny pretraining run on the Chinese corpus with its own tokenizer (about 10 s)."""
    out = tmp_path_factory.mktemp("gen") / "run"
    assert main(["pretrain", "--data", ZH, "--rows", "400", "--eval-rows", "40", "--model-size", "tiny", "--epochs", "1",
                 "--tokenizer", "train", "--tokenizer-vocab", "500", "--block-size", "64", "--sample-tokens", "0",
                 "--out", str(out)]) == 0
    return out


def test_replies_stream_piece_by_piece_and_match_plain_greedy_generation(model_run):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.generate import ModelChat

    pieces: list[str] = []
    chat = ModelChat(str(model_run / "model"))
    text = chat.reply("村民们都很高兴", pieces.append, max_new_tokens=12)
    assert len(pieces) > 1 and "".join(pieces) == text  # streamed, not handed over at the end
    tok = AutoTokenizer.from_pretrained(model_run / "model")
    model = AutoModelForCausalLM.from_pretrained(model_run / "model").eval()
    ids = tok("村民们都很高兴", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        new = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False,
                             pad_token_id=tok.eos_token_id)[0, ids.shape[1]:]
    assert text == tok.decode(new, skip_special_tokens=True)


def test_sampling_follows_the_seed(model_run):
    from core.generate import ModelChat

    chat = ModelChat(str(model_run / "model"))
    a = chat.reply("今天早上，", lambda _: None, 16, temperature=1.0, top_p=0.9, seed=3)
    b = chat.reply("今天早上，", lambda _: None, 16, temperature=1.0, top_p=0.9, seed=3)
    assert a == b


def test_the_cli_writes_the_prompt_then_the_continuation(model_run, capsys):
    assert main(["generate", "--run", str(model_run), "--prompt", "小明对妈妈说", "--max-new-tokens", "6"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("小明对妈妈说") and len(out.strip()) > len("小明对妈妈说")


@pytest.mark.parametrize("case, message", [
    ("neither", "give --run RUN_DIR (a finished pretraining or fine-tune run) or --model DIR"),
    ("no-model", "without a model to talk to"),
    ("not-a-run", "is not a run folder"),
    ("too-long", "more than the model's 256-token context"),
    ("zero-tokens", "--max-new-tokens must be at least 1"),
])
def test_bad_generate_input_is_one_line_exit_2(model_run, tmp_path, capsys, case, message):
    tokenizer_run = tmp_path / "tok"
    args = {
        "neither": ["--prompt", "x"],
        "no-model": ["--run", str(tokenizer_run), "--prompt", "x"],
        "not-a-run": ["--run", str(tmp_path), "--prompt", "x"],
        "too-long": ["--run", str(model_run), "--prompt", "很长的一句话" * 200],
        "zero-tokens": ["--run", str(model_run), "--prompt", "x", "--max-new-tokens", "0"],
    }[case]
    if case == "no-model":
        assert main(["tokenizer", "train", "--data", ZH, "--rows", "200", "--eval-rows", "20", "--vocab-size", "300",
                     "--out", str(tokenizer_run)]) == 0
        capsys.readouterr()
    assert main(["generate", *args]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert message in line


def test_rows_cut_by_packing_by_hand():
    from core.preview import rows_cut

    # Rows of 3, 5, 2, 6 tokens packed end to end in blocks of 4: [0-2] [3-7] [8-9] [10-15]
    # The 5-token row spans tokens 3..7 (blocks 0 and 1), the 6-token row 10..15 (blocks 2 and 3).
    assert rows_cut([3, 5, 2, 6], 4) == 2
    assert rows_cut([4, 4, 4], 4) == 0 and rows_cut([9], 4) == 1


def test_preview_counts_what_it_shows(tmp_path):
    from core.lm.tokenizers import bundled_gpt2_tokenizer
    from core.preview import preview, render

    rows = ["第一行字。", "second row, a little longer than the first", "三"]
    data = tmp_path / "c.txt"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    p = preview(str(data), "gpt2", block_size=8, rows=100)
    tok = bundled_gpt2_tokenizer()
    lengths = [len(tok(r)["input_ids"]) + 1 for r in rows]
    assert p["rows"] == 3 and p["first_rows"] == rows and p["tokens"] == sum(lengths)
    assert p["tokens_per_row"]["max"] == max(lengths) and p["chars_per_row"]["max"] == max(map(len, rows))
    assert sum(c for _, _, c in p["histogram"]) == 3
    assert p["rows_longer_than_block"] == sum(n > 8 for n in lengths) and p["blocks"] == -(-sum(lengths) // 8)
    text = "\n".join(render(p))
    assert "3 rows read" in text and "packing cuts" in text


def test_the_preview_command_and_its_bad_input(tmp_path, capsys):
    assert main(["data", "preview", "--data", ZH, "--rows", "200"]) == 0
    assert "200 rows read" in capsys.readouterr().out
    assert main(["data", "preview", "--data", str(tmp_path / "missing.txt")]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "does not exist" in line
    assert main(["data", "preview", "--data", ZH, "--block-size", "1"]) == 2
    assert "--block-size must be at least 2" in capsys.readouterr().err
