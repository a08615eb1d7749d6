"""Fine-tuning data: answers follow their text through shuffles, splits never leak, quotas and whole-subject splits."""

from __future__ import annotations

import csv
import itertools
import json
import random

import pytest

from core.errors import UsageError
from core.finetune import data as fdata
from core.finetune.config import DEMO_EXAMS
from core.finetune.templates import TEMPLATES
from core.mmmlu import LETTERS, extract_answer


def q(subject="s", text="What?", gold="B", options=("w", "x", "y", "z")) -> fdata.ExamQuestion:
    opts = dict(zip(LETTERS, options))
    return fdata.ExamQuestion(fdata.content_id(text, opts.values()), subject, text, opts, gold)


def test_the_answer_follows_its_text_through_every_permutation():
    question = q(gold="C", options=("apple", "pear", "plum", "fig"))
    for order in itertools.permutations(LETTERS):
        moved = question.shuffled(order)
        assert moved.options[moved.gold] == "plum"
        assert sorted(moved.options.values()) == sorted(question.options.values())
        assert moved.question_id == question.question_id


def test_shuffle_copies_are_the_original_plus_distinct_orders():
    question = q(gold="A")
    copies = fdata.shuffle_copies(question, 6, random.Random(0))
    assert copies[0] == question and len(copies) == 6
    orders = [tuple(c.options[k] for k in LETTERS) for c in copies]
    assert len(set(orders)) == 6
    assert all(c.options[c.gold] == "w" for c in copies)
    assert len(fdata.shuffle_copies(question, 24, random.Random(1))) == 24  # every order of four options


def _exam(tmp_path, per_subject: dict[str, int], repeat_first=False):
    path = tmp_path / "exam.csv"
    rows, n = [], 0
    for subject, count in per_subject.items():
        for i in range(count):
            rows.append([n, f"{subject} question {i}", "a", "b", "c", "d", "ABCD"[i % 4], subject])
            n += 1
    if repeat_first:
        rows.append([n, *rows[0][1:]])  # the same question twice in the source
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["", "Question", "A", "B", "C", "D", "Answer", "Subject"])
        writer.writerows(rows)
    return path


def test_per_subject_quotas_and_no_question_id_crosses_splits(tmp_path):
    questions, _ = fdata.load_questions(_exam(tmp_path, {"math": 30, "art": 12}, repeat_first=True))
    splits = fdata.split_per_subject(questions, 5, 4, seed=7)
    for subject in ("math", "art"):  # quotas count questions; a repeated row comes along with its question
        assert len({x.question_id for x in splits.val if x.subject == subject}) == 5
        assert len({x.question_id for x in splits.test if x.subject == subject}) == 4
    assert len(splits.train) + len(splits.val) + len(splits.test) == 43  # nothing dropped, the repeat included
    assert fdata.leaked_ids(splits) == set()
    ids = [{x.question_id for x in part} for part in (splits.train, splits.val, splits.test)]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    repeated = questions[0].question_id  # both copies of the repeated row sit in the same split
    assert sum(repeated in part for part in ids) == 1
    again = fdata.split_per_subject(questions, 5, 4, seed=7)  # seeded: the same split every time
    assert [x.question_id for x in again.test] == [x.question_id for x in splits.test]


def test_a_question_repeated_in_another_subject_file_never_crosses_splits(tmp_path):
    """Issue 21, defect 13: one CSV of a per-subject folder repeats rows of another (same text, options and gold).
    Keyed by file and row, the copies landed in train and test and the leak check said 0."""
    folder = tmp_path / "cmmlu"
    folder.mkdir()
    header = ",Question,A,B,C,D,Answer\n"
    rows = [f"{i},question {i} about plants,root,stem,leaf,flower,{'ABCD'[i % 4]}\n" for i in range(12)]
    (folder / "botany.csv").write_text(header + "".join(rows), encoding="utf-8")
    (folder / "farming.csv").write_text(header + "".join(rows[:6]) + "".join(
        f"{i},farm question {i},wheat,rice,corn,oats,A\n" for i in range(12, 20)), encoding="utf-8")
    questions, _ = fdata.load_questions(folder)
    for seed in range(5):
        for splits in (fdata.split_per_subject(questions, 3, 3, seed=seed),
                       fdata.split_by_subject(questions + [q(subject=f"extra{i}", text=f"extra {i}") for i in range(3)],
                                              0.25, 0.25, seed=seed)):
            assert fdata.leaked_ids(splits) == set()
            texts = [{(x.question, tuple(sorted(x.options.values()))) for x in part}
                     for part in (splits.train, splits.val, splits.test)]
            assert not (texts[0] & texts[1] or texts[0] & texts[2] or texts[1] & texts[2])
    # the identity is the content: shuffled options are the same question, another text is not
    assert fdata.content_id("Q?", ["a", "b"]) == fdata.content_id(" Q? ", ["b", "a"]) != fdata.content_id("Q!", ["a", "b"])


def test_a_quota_larger_than_a_subject_says_so_and_uses_what_is_there(tmp_path):
    questions, _ = fdata.load_questions(_exam(tmp_path, {"big": 20, "tiny": 3}))
    splits = fdata.split_per_subject(questions, 2, 2, seed=0)
    assert sum(x.subject == "tiny" for x in splits.val) == 2 and sum(x.subject == "tiny" for x in splits.test) == 1
    assert sum(x.subject == "tiny" for x in splits.train) == 0
    assert any("subject tiny has 3 questions" in note for note in splits.notes)


def test_whole_subjects_can_be_held_out(tmp_path):
    questions, _ = fdata.load_questions(_exam(tmp_path, {f"s{i}": 4 for i in range(10)}))
    splits = fdata.split_by_subject(questions, 0.2, 0.2, seed=3)
    subjects = [{x.subject for x in part} for part in (splits.train, splits.val, splits.test)]
    assert len(subjects[1]) == 2 and len(subjects[2]) == 2 and len(subjects[0]) == 6
    assert not (subjects[0] & subjects[1] or subjects[0] & subjects[2] or subjects[1] & subjects[2])
    with pytest.raises(UsageError, match="at least 3 subjects"):
        fdata.split_by_subject(questions[:8], 0.2, 0.2, seed=3)


def test_the_demo_exam_keeps_fields_exactly_as_written():
    questions, _ = fdata.load_questions(DEMO_EXAMS)
    assert len(questions) == 108 and len({x.subject for x in questions}) == 6
    options = [v for x in questions for v in x.options.values()]
    assert "None" in options and "NA" in options  # not turned into NaN
    assert any("\n" in x.question for x in questions) and any('"' in x.question and "," in x.question for x in questions)


def test_a_per_subject_folder_takes_the_file_name_as_subject(tmp_path):
    folder = tmp_path / "cmmlu"
    folder.mkdir()
    for subject in ("agronomy", "anatomy"):
        (folder / f"{subject}.csv").write_text(",Question,A,B,C,D,Answer\n0,问题一,甲,乙,丙,丁,B\n1,问题二,甲,乙,丙,丁,C\n",
                                               encoding="utf-8")
    questions, source = fdata.load_questions(folder)
    assert [x.subject for x in questions] == ["agronomy", "agronomy", "anatomy", "anatomy"] and "2 per-subject" in source


def test_alpaca_rows_in_seed_001_form_are_multiple_choice_questions(tmp_path):
    path = tmp_path / "a.jsonl"
    row = {"instruction": "Here is a question about college engineering hydrology, the correct answer is one of the options "
                          "A/B/C/D. Please select the correct option and answer the question with 'The right option is'.",
           "input": "Question: 下渗率总是[ ]。 \nA.小于、等于下渗能力\nB.等于下渗能力\nC.小于下渗能力\nD.大于下渗能力",
           "output": "The right option is A."}
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n", encoding="utf-8")
    (question,), _ = fdata.load_questions(path)
    assert question.subject == "college engineering hydrology" and question.gold == "A"
    assert question.options["A"] == "小于、等于下渗能力" and question.question == "下渗率总是[ ]。"
    template = TEMPLATES["alpaca"]
    assert template.target(question) == "The right option is A.小于、等于下渗能力"
    assert template.answer("The right option is C.小于下渗能力") == "C"


def test_the_mmmlu_template_is_the_eval_prompt_and_its_target_reads_back():
    question = q(gold="D", options=("一", "二", "三", "四"))
    template = TEMPLATES["mmmlu"]
    assert template.prompt(question) == "问题: What?\nA) 一\nB) 二\nC) 三\nD) 四\n请你给出答案（只输出一个字母）: "
    assert template.target(question) == "D) 四" and extract_answer(template.target(question)) == "D"


@pytest.mark.parametrize("content,message", [
    (",Question,A,B,C,D,Subject\n0,q,a,b,c,d,s\n", "lacks column(s) Answer"),
    (",Question,A,B,C,D,Answer,Subject\n0,q,a,b,c,d,E,s\n", "answers must be one of A, B, C, D"),
    (",Question,A,B,C,D,Answer,Subject\n0,q,a,b,c,d,A,\n", "empty Subject"),
    (",Question,A,B,C,D,Answer\n0,q,a,b,c,d,A\n", "no Subject column"),
])
def test_bad_exam_files_are_one_clear_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fdata.load_questions(path)
