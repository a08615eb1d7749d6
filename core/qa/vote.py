"""A majority vote over runs that answered the same questions, as a run of its own (`llmlab vote RUN...`).

Shared by the vote kind, by eval with several adapters and by fine-tuning ensembles: one way to read
answers from run folders, check that they answered the same questions, and vote.

Runs must have answered the same questions (the same data, the same selection); a run without an
answer for a question casts no vote there; a tie goes to the tied letter of the run with the
highest accuracy (equal accuracy: the run given first), as core/scoring/vote.py defines.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from core.errors import UsageError
from core.lifecycle import RunContext, run_job
from core.options import option
from core.qa.sheet import AnswerSheet, QuestionJob, qa_report, qa_summary
from core.runlog import question_key
from core.runs import CONFIG, RESULTS, SUMMARY, iter_jsonl, read_json


@dataclass
class VoteConfig:
    runs: list = option(factory=list, help="Run folders whose results.jsonl hold letter answers.", positional=True,
                        multiple=True, metavar="RUN...")
    out: str | None = option(None, "New run folder.", shown="runs/<timestamp>-vote", metavar="PATH")
    labels_out: str | None = option(None, "Also write the majority answers as training rows (seed 002's JSONL: a record "
                                    "per passage, its questions with options and the voted answer) that llmlab "
                                    "finetune --data reads: pseudo-labels.", metavar="FILE")

    def validate(self) -> None:
        if len(self.runs) < 2:
            raise UsageError("give at least two run folders to vote: llmlab vote RUN RUN [RUN ...]")
        if self.labels_out:
            target = Path(self.labels_out).expanduser()
            if target.exists():
                raise UsageError(f"--labels-out {target} already exists; choose a new file so nothing is overwritten")
            if not target.parent.is_dir():
                raise UsageError(f"--labels-out {target}: the folder {target.parent} does not exist")


@dataclass
class RunAnswers:
    path: Path
    rows: dict          # question key -> row
    accuracy: float
    data: str | None    # the data file's sha256 when the run recorded it


def read_answers(path: str | Path) -> RunAnswers:
    path = Path(path).expanduser()
    config, summary = read_json(path / CONFIG), read_json(path / SUMMARY)
    if config is None or not (path / RESULTS).is_file():
        raise UsageError(f"{path} is not a run with results (config.json and results.jsonl); pass eval run folders")
    if config.get("kind") == "vote":  # its voters would count twice: once in it, once on their own
        voters = " ".join(str(r) for r in config.get("runs") or []) or "RUN RUN"
        raise UsageError(f"{path} is itself a vote; vote over the runs it voted over instead ({voters})")
    rows = {question_key(r): r for r in iter_jsonl(path / RESULTS)}
    if not rows:
        raise UsageError(f"{path} has no answered questions in results.jsonl")
    if not all("pred" in r and "gold" in r for r in rows.values()):
        raise UsageError(f"{path}'s results have no answer letters (pred, gold) to vote with")
    if (summary or {}).get("status") not in ("completed", None) and summary.get("n") != summary.get("total"):
        raise UsageError(f"{path} is a {summary.get('status')} run that did not answer every question; resume it first")
    accuracy = sum(bool(r["correct"]) for r in rows.values()) / len(rows)
    return RunAnswers(path, rows, accuracy, ((config.get("settings") or {}).get("data_sha256")))


class VoteJob(QuestionJob):
    kind = "vote"

    def prepare(self) -> None:
        self.config.validate()
        seen: dict[Path, str] = {}
        for given in self.config.runs:  # the same run twice would cast every one of its answers twice
            path = Path(given).expanduser().resolve()
            if path in seen:
                raise UsageError(f"{given} is the same run as {seen[path]}; give each run once")
            seen[path] = given
        self.inputs = [read_answers(p) for p in self.config.runs]
        first = self.inputs[0]
        for other in self.inputs[1:]:
            if first.data and other.data and first.data != other.data:
                raise UsageError(f"{other.path} was run on other data than {first.path} (the data files differ); "
                                 f"vote only over runs of the same questions")
            differ = set(first.rows) ^ set(other.rows)
            if differ:
                raise UsageError(f"{other.path} answers other questions than {first.path} ({len(differ)} differ); "
                                 f"vote only over runs of the same questions")
        self.total = len(first.rows)
        if self.config.labels_out and not all(isinstance(r.get("options"), dict) for r in first.rows.values()):
            raise UsageError(f"{first.path}'s results carry no answer options, so they cannot become training rows; "
                             f"--labels-out needs eval or fine-tune runs made by this version of llmlab")

    def config_record(self) -> dict:
        return {**asdict(self.config), "runs": [str(r.path) for r in self.inputs]}

    def start_fields(self) -> dict:
        return {"total": self.total, "voters": len(self.inputs)}

    def run(self, ctx: RunContext) -> dict:
        rows, ties = voted_rows([run.rows for run in self.inputs], [run.accuracy for run in self.inputs])
        with AnswerSheet(ctx, self.total) as sheet:
            for row in rows:
                sheet.add(row)
        fields = {**qa_summary(sheet.rows, self.total), "ties": ties,
                  "runs": [{"run_dir": str(r.path), "accuracy": r.accuracy, "n": len(r.rows)} for r in self.inputs]}
        if self.config.labels_out and ctx.main:
            fields["labels_out"] = str(write_labels(Path(self.config.labels_out).expanduser(), sheet.rows))
            fields["labelled"] = sum(1 for r in sheet.rows if r["pred"])
            ctx.log(f"{fields['labelled']} voted answers written as training rows to {fields['labels_out']}")
        return fields

    def report(self, run_dir: Path, summary: dict) -> str:
        s = summary
        lines = qa_report(f"Vote of {len(s.get('runs', []))} runs — {run_dir.name}", s, [])
        if s.get("accuracy") is not None:
            lines += ["| run | accuracy |", "|---|---|", *[f"| {r['run_dir']} | {r['accuracy']:.1%} |" for r in s["runs"]],
                      f"| **vote** | **{s['accuracy']:.1%}** ({s['correct']}/{s['n']}, {s['ties']} ties) |", "",
                      "Per question the most frequent answer letter; no answer casts no vote; a tie goes to the tied "
                      "letter of the more accurate run (equal accuracy: the run given first).", ""]
        return "\n".join(lines)

    def figures_line(self, summary: dict) -> str | None:
        if summary.get("accuracy") is None:
            return None
        best = max(r["accuracy"] for r in summary["runs"])
        return f"vote accuracy {summary['accuracy']:.1%} (best single run {best:.1%})"


def voted_rows(runs: list[dict], accuracies: list[float]) -> tuple[list[dict], int]:
    """(one results row per question of the first run, with the vote's answer; how many were ties).

    `runs`: each run's rows by question key, the same questions in each. The rule is core/scoring/vote.py's.
    """
    from core.scoring.vote import tally, vote

    preds = [{k: r["pred"] for k, r in rows.items()} for rows in runs]
    winners = vote(preds, accuracies)
    counts = tally(preds)
    out, ties = [], 0
    for key, base in runs[0].items():
        top = counts[key].most_common()
        ties += len(top) > 1 and top[0][1] == top[1][1]
        out.append({"qid": key, "index": base.get("index"), "question_id": base.get("question_id"),
                    "subject": base.get("subject"), "question": base.get("question"), "prompt": base.get("prompt"),
                    "gold": base["gold"], "pred": winners[key], "correct": winners[key] == base["gold"],
                    "votes": dict(counts[key]), "preds": [p[key] for p in preds], "output": "", "new_tokens": 0,
                    **{k: base[k] for k in ("options", "group", "passage") if base.get(k)}})
    return out, ties


def write_labels(path: Path, rows: list[dict]) -> Path:
    """The voted answers as seed 002's JSONL (what finetune --data reads): one record per passage (or per question
    without one), its questions with their four options and the voted answer. Rows without an answer are left out."""
    import json
    import os

    from core.mmmlu import LETTERS

    records: dict[str, dict] = {}
    for row in rows:
        if not row.get("pred"):
            continue
        rid = str(row.get("group") or row["qid"])
        record = records.setdefault(rid, {"id": rid, "problem": row.get("passage") or "", "subject": row.get("subject"),
                                          "questions": []})
        record["questions"].append({"question": row["question"], "options": [row["options"][k] for k in LETTERS],
                                    "answer": row["pred"]})
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records.values()), encoding="utf-8")
    os.replace(tmp, path)
    return path


def run_vote(runs: list, out: str | None = None, log=print) -> dict:
    return run_job(VoteJob(VoteConfig(runs=list(runs), out=out)), log=log)
