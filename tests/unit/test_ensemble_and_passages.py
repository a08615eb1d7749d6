"""Seed 002: passages with sub-questions (split by record), pseudo-labels from a vote, and the adapter ensemble."""

from __future__ import annotations

import json

import pytest

from core.cli import main
from core.finetune import data as fdata
from core.finetune.config import demo_config
from core.finetune.run import run_finetune
from core.runs import iter_jsonl, read_json

pytestmark = pytest.mark.usefixtures("shared_demo_model")


def quiet(_line: str) -> None:
    pass


def passages_file(path, records: int = 30, subs: int = 3):
    """Seed 002's shape: one passage per record and several sub-questions, each with four options and an answer."""
    lines = []
    for r in range(records):
        questions = [{"question": f"In story {r}, who is number {k}?", "options": [f"p{k}", f"q{k}", f"r{k}", f"s{k}"],
                      "answer": "ABCD"[(r + k) % 4]} for k in range(subs)]
        lines.append(json.dumps({"id": f"rec{r:03d}", "problem": f"Story {r}: four people stand in a row.",
                                 "questions": questions}, ensure_ascii=False))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_sub_questions_become_questions_with_record_ids_and_their_passage_in_the_prompt(tmp_path):
    from core.finetune.templates import TEMPLATES

    questions, source = fdata.load_questions(passages_file(tmp_path / "logic.jsonl", records=2))
    assert [q.question_id for q in questions] == ["rec000#1", "rec000#2", "rec000#3", "rec001#1", "rec001#2", "rec001#3"]
    assert {q.group for q in questions} == {"rec000", "rec001"} and "passages" in source
    prompt = TEMPLATES["mmmlu"].prompt(questions[4])
    assert prompt.startswith("问题: Story 1: four people stand in a row.\nIn story 1, who is number 1?\nA) p1")


def test_splits_keep_the_sub_questions_of_one_passage_together(tmp_path):
    questions, _ = fdata.load_questions(passages_file(tmp_path / "logic.jsonl", records=40))
    for seed in range(5):
        splits = fdata.split_per_subject(questions, 4, 4, seed)
        assert not fdata.leaked_groups(splits) and not fdata.leaked_ids(splits)
        assert len(splits.val) == len(splits.test) == 4 * 3  # the quotas count records; each brings its 3 questions
        groups = [{q.group for q in part} for part in (splits.train, splits.val, splits.test)]
        assert sum(map(len, groups)) == 40


def test_a_record_without_four_options_is_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "problem": "p", "questions": [{"question": "q", "options": ["a", "b"],
                                                                          "answer": "A"}]}) + "\n")
    assert main(["finetune", "--demo", "--data", str(bad), "--out", str(tmp_path / "ft")]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl line 1 question 1 has 2 options" in err and not (tmp_path / "ft").exists()


@pytest.fixture(scope="module")
def ensemble(demo_model_cache, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LLMLAB_CACHE_DIR", str(demo_model_cache))
        out = tmp_path_factory.mktemp("ens") / "run"
        cfg = demo_config(out=str(out), ensemble=3, epochs=1, shuffle_copies=1, val_per_subject=2, test_per_subject=3,
                          max_length=128, test_max_new_tokens=6)
        yield out, run_finetune(cfg, log=quiet)


@pytest.mark.xdist_group("ensemble")
def test_a_three_adapter_ensemble_votes_by_the_vote_rule(ensemble):
    from core.scoring.vote import vote

    out, summary = ensemble
    e = summary["ensemble"]
    assert summary["status"] == "completed" and e["size"] == 3 and len(e["members"]) == 3
    assert [m["seed"] for m in e["members"]] == [1234, 1235, 1236]
    trained = [[r["question_id"] for r in iter_jsonl(out / "members" / f"member-{k}" / "data" / "train.jsonl")]
               for k in (1, 2, 3)]
    assert trained[0] != trained[1] != trained[2]  # bootstrap draws differ by member
    adapters = [(out / "members" / f"member-{k}" / "adapter" / "adapter_model.safetensors").read_bytes() for k in (1, 2, 3)]
    assert len(set(adapters)) == 3
    members = [{r["qid"]: r["pred"] for r in iter_jsonl(out / "members" / f"member-{k}" / "results.jsonl")} for k in (1, 2, 3)]
    accuracies = [m["test_accuracy"] for m in e["members"]]
    expected = vote(members, accuracies)
    voted = {r["qid"]: r for r in iter_jsonl(out / "results.jsonl")}
    assert len(voted) == summary["test"] == 18
    assert {k: r["pred"] for k, r in voted.items()} == expected
    assert all(r["preds"] == [m[k] for m in members] for k, r in voted.items())
    assert summary["test_accuracy_after"] == e["vote_accuracy"] == sum(r["correct"] for r in voted.values()) / 18
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| **vote** |" in report and "| adapter 3 |" in report


@pytest.mark.xdist_group("ensemble")
def test_vote_labels_out_writes_training_rows_finetune_reads(ensemble, tmp_path):
    import shutil

    out, _ = ensemble
    members = []
    for k in (1, 2, 3):  # the members' answers, with letters set by hand: a tiny model after one epoch seldom gives one
        copy = tmp_path / f"member-{k}"
        shutil.copytree(out / "members" / f"member-{k}", copy, ignore=shutil.ignore_patterns("adapter", "data"))
        rows = list(iter_jsonl(copy / "results.jsonl"))
        for i, row in enumerate(rows):
            row["pred"] = None if i == 0 else "ABCD"[(i + (k == 3)) % 4]
            row["correct"] = row["pred"] == row["gold"]
        (copy / "results.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        members.append(str(copy))
    labels = tmp_path / "pseudo.jsonl"
    assert main(["vote", *members, "--labels-out", str(labels), "--out", str(tmp_path / "v")]) == 0
    voted = {r["qid"]: r for r in iter_jsonl(tmp_path / "v" / "results.jsonl")}
    questions, _ = fdata.load_questions(labels)
    assert len(questions) == sum(1 for r in voted.values() if r["pred"]) == len(voted) - 1  # no answer, no row
    by_text = {r["question"]: r for r in voted.values()}
    for q in questions:
        assert q.gold == by_text[q.question]["pred"] and q.options == by_text[q.question]["options"]
    assert main(["vote", *members, "--labels-out", str(labels)]) == 2  # never overwritten


def test_a_stopped_ensemble_keeps_finished_adapters_and_resumes_the_rest(tmp_path):
    out = tmp_path / "run"
    cfg = demo_config(out=str(out), ensemble=2, epochs=1, shuffle_copies=1, val_per_subject=2, test_per_subject=2,
                      max_length=128, test_max_new_tokens=4)
    finished = {"n": 0}

    def stop_once_the_first_adapter_exists():
        done = (out / "members" / "member-1" / "summary.json").exists()
        finished["n"] += done
        return finished["n"] > 3  # a few steps into the second member

    stopped = run_finetune(cfg, log=quiet, should_stop=stop_once_the_first_adapter_exists)
    assert stopped["status"] == "stopped" and stopped["ensemble"]["finished"] == 1
    first = (out / "members" / "member-1" / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns
    assert main(["finetune", "--resume", str(out)]) == 0
    summary = read_json(out / "summary.json")
    assert summary["status"] == "completed" and len(summary["ensemble"]["members"]) == 2
    assert (out / "members" / "member-1" / "adapter" / "adapter_model.safetensors").stat().st_mtime_ns == first
    assert len(list(iter_jsonl(out / "results.jsonl"))) == summary["test"]
