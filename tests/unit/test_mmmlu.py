"""The seed-task prompt, answer extraction, and reading/selecting MMMLU CSV rows exactly."""

from __future__ import annotations

import csv

import pytest

from core.errors import UsageError
from core.mmmlu import answer_state, build_prompt, extract_answer, load_csv, select_questions, subjects

ROW = {"Question": "1+1=?", "A": "1", "B": "2", "C": "3", "D": "4"}


def test_prompt_is_the_seed_template_exactly():
    assert build_prompt(ROW) == "问题: 1+1=?\nA) 1\nB) 2\nC) 3\nD) 4\n请你给出答案（只输出一个字母）: "


def test_prompt_keeps_fields_verbatim():
    row = {"Question": 'He said "hi, there"\nand left', "A": " x ", "B": "a,b", "C": "{C}", "D": ""}
    assert build_prompt(row) == '问题: He said "hi, there"\nand left\nA)  x \nB) a,b\nC) {C}\nD) \n请你给出答案（只输出一个字母）: '


@pytest.mark.parametrize(
    "reply, answer",
    [
        ("A", "A"),
        ("B", "B"),
        (" C\n", "C"),
        ("\n\n  D. 不错误", "D"),
        ("B) 错误，不错误", "B"),
        ("(A)", "A"),
        ("（C）不错误，错误", "C"),
        ("**D**", "D"),
        ("【B】", "B"),
        ("Ａ", "A"),
        ("Ｄ）", "D"),
        ("A是正确答案", "A"),
        ("C，因为……", "C"),
        ("A\nB) 错误\nC) 不错误\nD) 不错误", "A"),  # the base-model ramble: only the start counts
        ("Because it is wrong", None),  # an English word is not an answer
        ("Do not do it", None),
        ("ABCD", None),
        ("Answer: C", "C"),
        ("The answer is B.", "B"),
        ("答案是D", "D"),
        ("答案：A", "A"),
        ("答案: (B)", "B"),
        ("好的，正确答案是 C。", "C"),
        ("**答案**：D", "D"),
        ("Answer: Because", None),
        ("我认为\n答案是B", None),  # the explicit form counts only in the first line
        ("", None),
        ("   ", None),
        ("1. A", None),
        ("a", None),  # lower case is not an answer letter
        ("Answer: b", None),  # ... not after the keyword either, whose own case does not matter
        ("The answer is a matter of taste", None),
        ("答案是ａ", None),
        ("ANSWER IS C", "C"),
        ("E", None),
        ("这是一道道德题。\nA) 错误", None),
    ],
)
def test_extract_answer(reply, answer):
    assert extract_answer(reply) == answer


@pytest.mark.parametrize(
    "prefix, state",
    [
        ("A", ("A", False)),  # may still become "Answer: ..."
        ("A)", ("A", True)),
        (" Because", (None, False)),
        ("Because\n", (None, True)),
        ("答案是B", ("B", False)),
        ("答案是B。", ("B", True)),
        ("Answer: C\n", ("C", True)),
    ],
)
def test_answer_state_says_when_more_text_cannot_change_the_answer(prefix, state):
    assert answer_state(prefix) == state


def test_a_settled_answer_never_changes_when_text_is_added():
    for prefix in ["A)", "（C）", "答案是B。", "Because\n", "x\n"]:
        answer, settled = answer_state(prefix)
        assert settled
        for tail in ["", "nswer: D", "\n答案是C", " B"]:
            assert extract_answer(prefix + tail) == answer


def write_tricky_csv(path):
    """An MMMLU-shaped CSV with quoted commas, doubled quotes, embedded newlines and NA-like text."""
    rows = [
        (12, 'Say "hi", then leave', "a, b", "NA", "None", "", "B", "moral_scenarios"),
        (3, "Line one\nline two", "1,000", '"quoted"', "null", "007", "D", "geography"),
        (40, "普通问题，带逗号", "是", "否", "不确定", "都不是", "A", "moral_scenarios"),
        (7, "Trailing space ", " lead", "x\r\ny", "#N/A", "nan", "C", "moral_scenarios"),
        (8, "Fourth moral", "A", "B", "C", "D", "A", "moral_scenarios"),
    ]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["", "Question", "A", "B", "C", "D", "Answer", "Subject"])
        writer.writerows(rows)
    return rows


def test_selection_keeps_file_order_subject_filter_and_fields_exactly(tmp_path):
    path = tmp_path / "tricky.csv"
    rows = write_tricky_csv(path)
    frame = load_csv(path)
    assert subjects(frame) == ["moral_scenarios", "geography"]
    questions, warnings = select_questions(frame, "moral_scenarios", 3)
    assert warnings == []
    assert [q.index for q in questions] == [12, 40, 7]  # file order, the CSV's own index
    first = questions[0]
    assert first.question == 'Say "hi", then leave'
    assert first.choices == {"A": "a, b", "B": "NA", "C": "None", "D": ""}
    assert first.gold == "B"
    assert questions[2].choices["B"] == "x\r\ny"
    assert questions[2].choices["C"] == "#N/A" and questions[2].choices["D"] == "nan"
    assert questions[2].question == "Trailing space " and questions[2].choices["A"] == " lead"
    assert first.prompt == build_prompt({"Question": rows[0][1], "A": rows[0][2], "B": rows[0][3], "C": rows[0][4], "D": rows[0][5]})

    everything, _ = select_questions(frame, "all", None)
    assert [q.index for q in everything] == [12, 3, 40, 7, 8]
    assert everything[1].question == "Line one\nline two" and everything[1].choices["D"] == "007"


def test_limit_above_available_warns_and_uses_all(tmp_path):
    path = tmp_path / "tricky.csv"
    write_tricky_csv(path)
    questions, warnings = select_questions(load_csv(path), "geography", 100)
    assert len(questions) == 1
    assert warnings and "100" in warnings[0] and "using all 1" in warnings[0]


def test_unknown_subject_lists_the_subjects_present(tmp_path):
    path = tmp_path / "tricky.csv"
    write_tricky_csv(path)
    with pytest.raises(UsageError, match="moral_scenarios, geography"):
        select_questions(load_csv(path), "astronomy", 10)


def test_missing_columns_are_named(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(",Question,A,B,C,Answer\n0,q,a,b,c,A\n", encoding="utf-8")
    with pytest.raises(UsageError, match="lacks column\\(s\\) D, Subject"):
        load_csv(path)


def test_gbk_file_is_reported_as_not_utf8_with_a_fix(tmp_path):
    path = tmp_path / "gbk.csv"
    path.write_bytes(",Question,A,B,C,D,Answer,Subject\n0,问题,是,否,对,错,A,moral_scenarios\n".encode("gbk"))
    with pytest.raises(UsageError, match="not UTF-8.*iconv -f GBK -t UTF-8"):
        load_csv(path)


def test_bad_gold_answer_is_reported(tmp_path):
    path = tmp_path / "gold.csv"
    path.write_text(",Question,A,B,C,D,Answer,Subject\n0,q,a,b,c,d,E,s\n", encoding="utf-8")
    with pytest.raises(UsageError, match="Answer 'E'"):
        select_questions(load_csv(path), "all", None)


def test_demo_asset_is_mmmlu_shaped():
    from core.eval.config import DEMO_DATA

    text = DEMO_DATA.read_text(encoding="utf-8")
    assert text.startswith(",Question,A,B,C,D,Answer,Subject\n")
    frame = load_csv(DEMO_DATA)
    assert len(frame) >= 30
    assert {"moral_scenarios"} < set(subjects(frame)) and len(subjects(frame)) >= 3
    questions, _ = select_questions(frame, "all", None)
    assert any("\n" in q.question for q in questions) and any('"' in q.question for q in questions)
    assert {q.gold for q in questions} == {"A", "B", "C", "D"}
