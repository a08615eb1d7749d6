"""`llmlab tokenizer train`: exact round trips, compression recomputed by hand, the run folder, bad input."""

from __future__ import annotations

import pytest

from core import DEMO_DATA_DIR
from core.cli import main
from core.runs import iter_jsonl, read_json

ZH = str(DEMO_DATA_DIR / "demo_corpus_zh.txt")
# Strings a byte-level BPE must give back exactly, whatever it learned.
HARD_STRINGS = [
    "我说你倒是快点啊",
    "emoji 👍🏽 and a family 👨‍👩‍👧 and a flag 🇨🇳",
    "CJK outside the BMP: 𠮷野家 𪚥 𰻞𰻞面",
    "tabs\there\t\tand\tthere",
    "repeated     spaces   inside",
    "   leading and trailing spaces   ",
    "\n\nnewlines\r\nand CRLF\n",
    "full-width ＡＢＣ　１２３ and ideographic space",
    "combining e\u0301 and zero-width\u200bjoiner",
    "<|endoftext|> in the middle",
    "",
]


def error_lines(err: str) -> list[str]:
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("llmlab: error:")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tokenizer run on the bundled Chinese corpus, shared by the module's tests (a few seconds)."""
    out = tmp_path_factory.mktemp("bpe") / "run"
    assert main(["tokenizer", "train", "--data", ZH, "--rows", "1500", "--eval-rows", "200", "--vocab-size", "800",
                 "--special", "<|user|>", "--out", str(out)]) == 0
    return out


def test_the_run_folder_holds_a_tokenizer_autotokenizer_loads(trained):
    from transformers import AutoTokenizer

    for name in ("config.json", "events.jsonl", "summary.json", "report.md", "tokenizer/tokenizer.json"):
        assert (trained / name).is_file(), name
    tok = AutoTokenizer.from_pretrained(trained / "tokenizer")
    summary = read_json(trained / "summary.json")
    assert summary["status"] == "completed" and summary["vocab_size"] == len(tok) == 800  # the extra special included
    assert tok.eos_token == tok.pad_token == "<|endoftext|>"
    assert tok("a<|user|>b", add_special_tokens=False)["input_ids"][1] == tok.convert_tokens_to_ids("<|user|>")
    assert summary["round_trip_failures"] == 0 and summary["round_trip_ok"]
    assert [e["type"] for e in iter_jsonl(trained / "events.jsonl")][0] == "start"


@pytest.mark.parametrize("text", HARD_STRINGS)
def test_every_string_decodes_back_exactly(trained, text):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(trained / "tokenizer")  # as a user loads it, not the trainer's object
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    if text and "<|endoftext|>" not in text:
        assert tok.unk_token_id not in ids  # byte-level: nothing is ever unknown


def test_compression_figures_recomputed_independently(trained):
    from transformers import AutoTokenizer

    from core.lm.tokenizers import bundled_gpt2_tokenizer

    summary = read_json(trained / "summary.json")
    lines = open(ZH, encoding="utf-8").read().splitlines()
    held = lines[1500:1700]  # the 200 rows after the training rows, never trained on
    assert summary["held_out_rows"] == 200
    for name, tok in (("llmlab BPE (this run)", AutoTokenizer.from_pretrained(trained / "tokenizer")),
                      (next(k for k in summary["compression"] if k.startswith("gpt2")), bundled_gpt2_tokenizer())):
        tokens = sum(len(tok.encode(row, add_special_tokens=False)) for row in held)
        figures = summary["compression"][name]
        assert figures["tokens"] == tokens
        assert figures["tokens_per_char"] == pytest.approx(tokens / sum(map(len, held)), abs=1e-4)
        assert figures["tokens_per_byte"] == pytest.approx(tokens / sum(len(r.encode()) for r in held), abs=1e-4)
    ours, gpt2 = (summary["compression"][k]["tokens_per_char"] for k in summary["compression"])
    assert ours < 1.0 < 1.5 < gpt2  # Chinese-trained merges (800 tokens here) vs English ones, as seed 004 found


def test_gpt2_spends_the_issue_s_18_tokens_on_eight_chinese_characters():
    from core.lm.bpe import compression
    from core.lm.tokenizers import bundled_gpt2_tokenizer

    assert compression(bundled_gpt2_tokenizer(), ["我说你倒是快点啊"])["tokens_per_char"] == 2.25


def test_report_shows_the_table_and_example_segmentations(trained):
    report = (trained / "report.md").read_text(encoding="utf-8")
    assert "| tokenizer | tokens | tokens per character | tokens per byte |" in report
    assert "## Example segmentations" in report and "llmlab BPE (this run)" in report


def test_a_piece_of_a_character_is_shown_as_its_bytes():
    from core.lm.bpe import segmentation
    from core.lm.tokenizers import bundled_gpt2_tokenizer

    # GPT-2 stores 张 (e5 bc a0) as two tokens; each alone is not a character.
    pieces = segmentation(bundled_gpt2_tokenizer(), "张 said")
    assert pieces == ["<e5 bc>", "<a0>", " said"]
    assert "\ufffd" not in "".join(pieces)


def test_pretrain_accepts_the_run_folder_and_its_tokenizer_subfolder(trained):
    from core.lm.tokenizers import load_tokenizer

    for path in (trained, trained / "tokenizer"):
        tok, source = load_tokenizer(str(path))
        assert len(tok) == 800 and str(trained / "tokenizer") in source


def test_nfkc_folds_full_width_forms(tmp_path):
    from core.lm.bpe import train_bpe

    tok = train_bpe(["ＡＢＣ１２３ abc"] * 20, 300, nfkc=True)
    assert tok.decode(tok("ＡＢＣ", add_special_tokens=False)["input_ids"]) == "ABC"


@pytest.mark.parametrize("setup, args, message", [
    (None, ["--vocab-size", "200"], "below the 256 byte symbols"),
    ("empty", [], "is empty"),
    ("blank", [], "only blank lines"),
    ("binary", [], "looks like a binary file"),
    ("missing", [], "does not exist"),
])
def test_bad_input_is_one_line_exit_2_and_no_run_folder(tmp_path, capsys, setup, args, message):
    data = tmp_path / "corpus.txt"
    if setup != "missing":
        data.write_bytes({None: "一行\n两行\n".encode() * 50, "empty": b"", "blank": b"\n\n  \n",
                          "binary": bytes(range(256)) * 40}[setup])
    out = tmp_path / "out"
    assert main(["tokenizer", "train", "--data", str(data), "--out", str(out), *args]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert message in line
    assert not out.exists()


def test_a_tokenizer_folder_missing_its_files_is_one_line(tmp_path, capsys):
    folder = tmp_path / "tok"
    folder.mkdir()
    (folder / "special_tokens_map.json").write_text("{}")
    corpus = tmp_path / "c.txt"
    corpus.write_text("一行字\n" * 50, encoding="utf-8")
    assert main(["pretrain", "--data", str(corpus), "--tokenizer", str(folder), "--model-size", "tiny",
                 "--out", str(tmp_path / "run")]) == 2
    (line,) = error_lines(capsys.readouterr().err)
    assert "has no vocabulary" in line
