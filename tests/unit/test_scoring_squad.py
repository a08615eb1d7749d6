"""SQuAD v1.1 EM/F1 as the official script defines them, and reading SQuAD data and prediction files."""

from __future__ import annotations

import json

import pytest

from core.scoring.squad import (
    best_over_golds,
    exact_match,
    f1,
    load_predictions,
    load_squad,
    normalize_answer,
    score_predictions,
)

# --- normalization ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, normalized",
    [
        ("The cat", "cat"),
        ("an apple", "apple"),
        ("A dog and the cat", "dog and cat"),
        ("theory", "theory"),  # "the" only as a whole word
        ("the theory", "theory"),
        ("Anthem at a theatre", "anthem at theatre"),
        ("don't", "dont"),
        ("U.S.", "us"),
        ("well-known", "wellknown"),
        ("the-cat", "thecat"),  # punctuation goes first, so the article is no longer a word
        ("  red\t\n fox  ", "red fox"),
        ("The.", ""),
        ("北京。", "北京。"),  # full-width punctuation is not in string.punctuation
        ("“quoted”", "“quoted”"),  # neither are curly quotes
        ("Paris!", "paris"),
    ],
)
def test_normalize_answer(text, normalized):
    assert normalize_answer(text) == normalized


def test_articles_are_removed_as_words():
    assert exact_match("The cat", "cat") == 1.0
    assert exact_match("an apple", "apple") == 1.0
    assert exact_match("theory", "ory") == 0.0


def test_punctuation_inside_words_is_dropped_not_split():
    assert exact_match("don't", "dont") == 1.0
    assert exact_match("U.S.", "us") == 1.0
    assert exact_match("well-known", "well known") == 0.0  # "wellknown" vs "well known"


def test_non_ascii_punctuation_is_kept():
    assert exact_match("北京。", "北京") == 0.0
    assert f1("北京。", "北京") == 0.0  # one token each, and they differ
    assert exact_match("“yes”", "yes") == 0.0
    assert exact_match('"yes"', "yes") == 1.0  # ASCII quotes do go


def test_whitespace_is_collapsed():
    assert exact_match("  red \n\t fox ", "red fox") == 1.0
    assert f1("  red \n\t fox ", "red fox") == 1.0


def test_empty_prediction_scores_zero():
    assert exact_match("", "cat") == 0.0
    assert f1("", "cat") == 0.0


def test_answer_that_normalizes_to_nothing_matches_exactly_but_has_f1_zero():
    # Both sides become "": equal strings, but no common token, and v1.1 returns 0 when num_same == 0.
    assert exact_match("The.", "the") == 1.0
    assert f1("The.", "the") == 0.0
    assert f1("", "") == 0.0
    assert f1("a", "cat") == 0.0  # one side empty, the other not


def test_f1_partial_overlap():
    # [big, red, fox] vs [red, fox, jumps]: 2 common, precision 2/3, recall 2/3, F1 2/3.
    assert f1("the big red fox", "red fox jumps") == pytest.approx(2 / 3)
    # [red, fox] vs [red, fox, jumps]: precision 1, recall 2/3, F1 = 2*(2/3)/(5/3) = 0.8.
    assert f1("red fox", "red fox jumps") == pytest.approx(0.8)
    assert f1("Red Fox", "red fox") == 1.0


def test_f1_counts_repeated_tokens_with_multiplicity():
    # [red, red, red] vs [red, fox]: common min(3, 1) = 1, precision 1/3, recall 1/2, F1 = (1/3)/(5/6) = 0.4.
    assert f1("red red red", "red fox") == pytest.approx(0.4)
    # [red, red] vs [red, red, fox]: common 2, precision 1, recall 2/3, F1 0.8.
    assert f1("red red", "red red fox") == pytest.approx(0.8)


def test_best_over_golds_takes_the_max():
    # vs "blue cat" 0, vs "red fox jumps" 0.8, vs "fox" (precision 1/2, recall 1) 2/3.
    assert best_over_golds(f1, "red fox", ["blue cat", "red fox jumps", "fox"]) == pytest.approx(0.8)
    assert best_over_golds(exact_match, "Broncos", ["Denver Broncos", "the Broncos"]) == 1.0
    assert best_over_golds(exact_match, "Denver", ["Denver Broncos", "the Broncos"]) == 0.0


def test_best_over_golds_needs_a_gold():
    with pytest.raises(ValueError, match="no gold answers"):
        best_over_golds(f1, "x", [])


# --- score_predictions -------------------------------------------------------------------------

EXAMPLES = [
    {"id": "q1", "answers": ["Denver Broncos"]},
    {"id": "q2", "answers": ["red fox jumps"]},
    {"id": "q3", "answers": ["Paris", "City of Paris"]},
    {"id": "q4", "answers": ["1990"]},
]
PREDICTIONS = {"q1": "the Denver Broncos", "q2": "the big red fox", "q3": "London", "q4": "in 1990", "extra": "ignored"}


def test_score_predictions_aggregates_as_percent_rows_as_fractions():
    result = score_predictions(EXAMPLES, PREDICTIONS)
    # EM: 1, 0, 0, 0 -> 25.0. F1: 1, 2/3, 0, 2/3 ("in 1990" vs "1990": precision 1/2, recall 1) -> 100 * (7/3) / 4.
    assert result["n"] == 4
    assert result["exact_match"] == pytest.approx(25.0)
    assert result["f1"] == pytest.approx(175 / 3)
    assert [row["id"] for row in result["rows"]] == ["q1", "q2", "q3", "q4"]
    assert [row["em"] for row in result["rows"]] == [1.0, 0.0, 0.0, 0.0]
    assert [row["f1"] for row in result["rows"]] == pytest.approx([1.0, 2 / 3, 0.0, 2 / 3])
    assert result["rows"][2] == {"id": "q3", "prediction": "London", "golds": ["Paris", "City of Paris"], "em": 0.0, "f1": 0.0}


def test_score_predictions_with_no_examples():
    assert score_predictions([], {}) == {"exact_match": 0.0, "f1": 0.0, "n": 0, "rows": []}


def test_missing_predictions_are_an_error_listing_them():
    examples = [{"id": f"q{i}", "answers": ["x"]} for i in range(10)]
    predictions = {f"q{i}": "x" for i in range(7)}
    with pytest.raises(ValueError) as exc:
        score_predictions(examples, predictions)
    assert str(exc.value) == "predictions are missing 3 of 10 question ids: q7, q8, q9"


def test_missing_predictions_list_at_most_five():
    examples = [{"id": f"q{i}", "answers": ["x"]} for i in range(10)]
    with pytest.raises(ValueError) as exc:
        score_predictions(examples, {"q0": "x", "q1": "x", "q2": "x"})
    assert str(exc.value) == "predictions are missing 7 of 10 question ids: q3, q4, q5, q6, q7, ..."


# --- load_squad ----------------------------------------------------------------------------------

NESTED = {
    "version": "1.1",
    "data": [
        {
            "title": "Super_Bowl_50",
            "paragraphs": [
                {
                    "context": "The Denver Broncos won Super Bowl 50.",
                    "qas": [
                        {"id": "q1", "question": "Who won?", "answers": [{"text": "Denver Broncos", "answer_start": 4},
                                                                          {"text": "The Denver Broncos", "answer_start": 0}]},
                        {"id": "q2", "question": "Which Super Bowl?", "answers": [{"text": "50", "answer_start": 34}]},
                    ],
                }
            ],
        },
        {
            "title": "Paris",
            "paragraphs": [
                {"context": "Paris is in France.", "qas": [{"id": "q3", "question": "Where is Paris?",
                                                             "answers": [{"text": "France", "answer_start": 12}]}]}
            ],
        },
    ],
}

EXPECTED = [
    {"id": "q1", "title": "Super_Bowl_50", "context": "The Denver Broncos won Super Bowl 50.", "question": "Who won?",
     "answers": ["Denver Broncos", "The Denver Broncos"], "answer_starts": [4, 0]},
    {"id": "q2", "title": "Super_Bowl_50", "context": "The Denver Broncos won Super Bowl 50.", "question": "Which Super Bowl?",
     "answers": ["50"], "answer_starts": [34]},
    {"id": "q3", "title": "Paris", "context": "Paris is in France.", "question": "Where is Paris?",
     "answers": ["France"], "answer_starts": [12]},
]


def _flat_rows():
    """EXPECTED in Hugging Face's flat `squad` layout."""
    return [{"id": e["id"], "title": e["title"], "context": e["context"], "question": e["question"],
             "answers": {"text": e["answers"], "answer_start": e["answer_starts"]}} for e in EXPECTED]


def _write(path, data):
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def test_load_nested_official_json(tmp_path):
    assert load_squad(_write(tmp_path / "dev-v1.1.json", NESTED)) == EXPECTED


def test_load_flat_json_list(tmp_path):
    assert load_squad(_write(tmp_path / "flat.json", _flat_rows())) == EXPECTED


def test_load_flat_jsonl(tmp_path):
    path = tmp_path / "flat.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in _flat_rows()) + "\n\n", encoding="utf-8")
    assert load_squad(path) == EXPECTED


def test_load_json_lines_under_a_json_name(tmp_path):
    # datasets' to_json() writes JSON Lines even to a .json file.
    path = tmp_path / "validation.json"
    path.write_text("\n".join(json.dumps(row) for row in _flat_rows()), encoding="utf-8")
    assert load_squad(path) == EXPECTED


def test_load_flat_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "validation.parquet"
    pq.write_table(pa.Table.from_pylist(_flat_rows()), path)
    assert load_squad(path) == EXPECTED


def test_load_accepts_a_byte_order_mark_and_integer_ids(tmp_path):
    path = tmp_path / "bom.json"
    rows = [{"id": 7, "context": "a b c", "question": "Q?", "answers": {"text": ["a b"], "answer_start": [0]}}]
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(rows).encode())
    assert load_squad(path) == [{"id": "7", "title": "", "context": "a b c", "question": "Q?", "answers": ["a b"],
                                 "answer_starts": [0]}]


def test_a_flat_row_without_its_passage_is_refused_not_answered_from_nothing(tmp_path):
    """Issue 21, defect 7: a flat row with no `context` used to be answered with an empty passage."""
    for row in ({"id": "1", "question": "Q?", "answers": {"text": ["a"], "answer_start": [0]}},
                {"id": "1", "context": " ", "question": "Q?", "answers": {"text": ["a"], "answer_start": [0]}}):
        path = tmp_path / "flat.jsonl"
        path.write_text(json.dumps(row) + "\n", encoding="utf-8")
        assert "has no passage ('context')" in _error(load_squad, path)


def test_a_json_error_message_names_its_place_once(tmp_path):
    """Issue 21, defect 19: 'Unterminated string starting at' was followed by ' at line ...' ("at at")."""
    path = tmp_path / "torn.json"
    path.write_text('{"data": [{"title": "oops', encoding="utf-8")
    message = _error(load_squad, path)
    assert "is not valid JSON (Unterminated string" in message and "at at" not in message and "line 1 column" in message


def test_squad_files_that_are_not_utf8_text_are_one_clear_line(tmp_path):
    for name, raw, phrase in (("latin1.json", '[{"id": "é"}]'.encode("latin-1"), "is not UTF-8 text"),
                              ("binary.json", bytes(range(256)), "looks like a binary file"),
                              ("utf16.json", "[]".encode("utf-16"), "is UTF-16 text")):
        path = tmp_path / name
        path.write_bytes(raw)
        assert phrase in _error(load_squad, path)


def _nested_with(qa):
    return {"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": "c", "qas": [
        {"id": "ok", "question": "Fine?", "answers": [{"text": "yes", "answer_start": 0}]}, qa]}]}]}


def _row(**fields):
    row = {"id": "r", "title": "T", "context": "c", "question": "Q?", "answers": {"text": ["a"], "answer_start": [0]}}
    row.update(fields)
    return row


def _error(loader, path) -> str:
    with pytest.raises(ValueError) as exc:
        loader(path)
    message = str(exc.value)
    assert "\n" not in message  # one line, for the caller to print as is
    return message


@pytest.mark.parametrize(
    "name, content, phrases",
    [
        ("bad.json", "{not json", ["is not valid JSON"]),
        ("empty.json", "  \n", ["is empty"]),
        ("scalar.json", "42", ["neither SQuAD form", "'data' list"]),
        ("keys.json", json.dumps({"version": "1.1", "articles": []}), ["neither SQuAD form", "keys version, articles", "'data' list",
                                                                       "id, title, context, question, answers"]),
        ("nodata.json", json.dumps({"data": []}), ["holds no questions"]),
        ("noparas.json", json.dumps({"data": [{"title": "T"}]}), ["data[0]", "'paragraphs' list"]),
        ("noqas.json", json.dumps({"data": [{"paragraphs": [{"context": "c"}]}]}), ["data[0].paragraphs[0]", "'qas' list"]),
        ("noid.json", json.dumps(_nested_with({"question": "Q?", "answers": [{"text": "a", "answer_start": 0}]})),
         ["data[0].paragraphs[0].qas[1]", "has no 'id'"]),
        ("noquestion.json", json.dumps(_nested_with({"id": "x", "answers": [{"text": "a", "answer_start": 0}]})),
         ["data[0].paragraphs[0].qas[1]", "question x has no question text"]),
        ("noanswers.json", json.dumps(_nested_with({"id": "x", "question": "Q?", "answers": []})),
         ["qas[1]", "empty answer list", "at least one"]),
        ("v2.json", json.dumps(_nested_with({"id": "x", "question": "Q?", "answers": [], "is_impossible": True})),
         ["empty answer list", "SQuAD v2"]),
        ("absent.json", json.dumps(_nested_with({"id": "x", "question": "Q?"})), ["has no 'answers'"]),
        ("badtext.json", json.dumps(_nested_with({"id": "x", "question": "Q?", "answers": [{"answer_start": 0}]})),
         ["answer text is null"]),
        ("dup.json", json.dumps(_nested_with({"id": "ok", "question": "Again?", "answers": [{"text": "a", "answer_start": 0}]})),
         ["duplicate question id ok", "ids must be unique"]),
        ("rows.json", json.dumps([_row(id="a"), _row(id="b", question="")]), ["row 2", "question b has no question text"]),
        ("rowid.json", json.dumps([_row(id=None)]), ["row 1", "has no 'id'"]),
        ("rowempty.json", json.dumps([_row(answers={"text": [], "answer_start": []})]), ["row 1", "empty answer list"]),
        ("rowstarts.json", json.dumps([_row(answers={"text": ["a", "b"], "answer_start": [0]})]), ["answer_start"]),
        ("rowshape.json", json.dumps([_row(answers="a")]), ["'answers' is a string"]),
        ("rowkind.json", json.dumps([["id", "q"]]), ["row 1", "expected a row object", "found an array"]),
        ("rowdup.json", json.dumps([_row(id="a"), _row(id="a")]), ["duplicate question id a", "row 1 and", "row 2"]),
        ("lines.jsonl", json.dumps(_row(id="a")) + "\n{oops\n", ["line 2 is not valid JSON", "one JSON object per line"]),
        ("lineid.jsonl", json.dumps(_row(id="a")) + "\n" + json.dumps(_row(id="")), ["line 2", "has no 'id'"]),
    ],
)
def test_load_squad_bad_input(tmp_path, name, content, phrases):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    message = _error(load_squad, path)
    for phrase in phrases:
        assert phrase in message


def test_load_squad_missing_file(tmp_path):
    assert "does not exist" in _error(load_squad, tmp_path / "nope.json")
    assert "does not exist" in _error(load_squad, tmp_path / "nope.parquet")


def test_load_squad_not_utf8(tmp_path):
    path = tmp_path / "gbk.json"
    path.write_bytes("[{\"id\": \"问题\"}]".encode("gbk"))
    assert "is not UTF-8 text" in _error(load_squad, path)


def test_load_squad_not_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "fake.parquet"
    path.write_text("this is not parquet", encoding="utf-8")
    assert "is not a readable Parquet file" in _error(load_squad, path)


# --- load_predictions ----------------------------------------------------------------------------


def test_load_predictions(tmp_path):
    predictions = {"q1": "Denver Broncos", "q2": "", "q3": "北京"}
    assert load_predictions(_write(tmp_path / "predictions.json", predictions)) == predictions


@pytest.mark.parametrize(
    "content, phrase",
    [
        ("{oops", "is not valid JSON"),
        (json.dumps(["Denver Broncos"]), "holds an array; predictions must be one JSON object"),
        (json.dumps("Denver Broncos"), "holds a string"),
        (json.dumps({"q1": "a", "q2": 50}), "prediction for question id q2 is a number, not a string"),
        (json.dumps({"q1": None}), "prediction for question id q1 is null"),
        (json.dumps({"q1": ["a", "b"]}), "q1 is an array"),
    ],
)
def test_load_predictions_bad_input(tmp_path, content, phrase):
    path = tmp_path / "predictions.json"
    path.write_text(content, encoding="utf-8")
    assert phrase in _error(load_predictions, path)


def test_load_predictions_missing_file(tmp_path):
    assert "predictions file" in _error(load_predictions, tmp_path / "nope.json")
