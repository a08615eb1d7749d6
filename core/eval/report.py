"""summary.json contents and report.md for an eval run."""

from __future__ import annotations

from collections import Counter

from core.mmmlu import LETTERS
from core.qa.sheet import qa_report

WRONG_SHOWN = 5
OUTPUT_SHOWN = 300  # characters of a wrong reply quoted in the report


def answer_counts(preds) -> dict[str, int]:
    counts = Counter(p if p in LETTERS else "none" for p in preds)
    return {k: counts.get(k, 0) for k in (*LETTERS, "none")}


def _seconds(value) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _fence(text: str) -> str:
    """A code fence longer than any backtick run in `text`, so model output cannot break the report."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def render_report(summary: dict, rows: list[dict], hardware_table: str) -> str:
    """report.md: accuracy, time, answer distribution, hardware, optimizations, first wrong answers."""
    s = summary
    accuracy = "-" if s["accuracy"] is None else f"{s['accuracy']:.1%}"
    mode = ("generate (greedy reply, answer read from its start)" if s["mode"] == "generate" else
            "logprob (most likely of the A/B/C/D next tokens; not comparable with generate figures)")
    figures = [("Accuracy", f"**{accuracy}** ({s['correct']}/{s['n']})")]
    if s["status"] != "completed":
        figures.append(("Questions answered", f"{s['n']} of {s['total']}"))
    figures += [("Mode", mode), ("Data", f"{s['data']}; subject {s['subject']}, limit {s['limit']}"), ("Model", s["model"]),
                ("dtype", s["dtype"]), ("Batch size", s["batch_size"]), ("Max new tokens", s["max_new_tokens"]),
                ("Model load", _seconds(s["load_seconds"])),
                ("Generation" if s["mode"] == "generate" else "Scoring", _seconds(s["generate_seconds"]))]
    if s["mode"] == "generate":
        rate = "-" if s["tokens_per_second"] is None else f"{s['tokens_per_second']:.0f}"
        # A resumed run's rate covers only the tokens this process made, not the reused rows'.
        this_run = f"{s['tokens_this_run']} of them in this run at " if s.get("reused_rows") else ""
        figures.append(("Tokens generated", f"{s['tokens_generated']} ({this_run}{rate} tokens/s)"))
    lines = qa_report(f"MMMLU evaluation: {s['model_label']}", s, figures,
                      demo_note=f"> **Demo run.** The model is a {s['model_label']}; its answers are noise.")
    lines += ["## Answer distribution", "", "| | A | B | C | D | none |", "|---|---|---|---|---|---|"]
    gold = answer_counts(r["gold"] for r in rows)
    lines.append("| predicted | " + " | ".join(str(s["answer_counts"][k]) for k in (*LETTERS, "none")) + " |")
    lines.append("| gold | " + " | ".join(str(gold[k]) for k in (*LETTERS, "none")) + " |")
    lines += ["", "## Hardware", "", hardware_table, "", "## Optimizations", ""]
    lines += [f"- {o}" for o in s["optimizations"]] or ["- none"]
    lines += ["", "## First wrong answers", ""]
    wrong = sorted((r for r in rows if not r["correct"]), key=lambda r: _order(r["index"]))[:WRONG_SHOWN]
    if not wrong:
        lines.append("None." if rows else "No questions were answered.")
    for r in wrong:
        shown = r["output"] if len(r["output"]) <= OUTPUT_SHOWN else r["output"][:OUTPUT_SHOWN] + " …"
        fence = _fence(shown)
        lines += [
            f"### Row {r['index']} ({r['subject']}): gold {r['gold']}, predicted {r['pred'] or 'none'}",
            "",
            f"{r['question'][:300]}",
            "",
            f"Reply ({r['new_tokens']} tokens):" if s["mode"] == "generate" else
            "Scores: " + ", ".join(f"{k} {v:.2f}" for k, v in r.get("logprobs", {}).items()),
            "",
        ]
        if s["mode"] == "generate":
            lines += [fence, shown, fence, ""]
    return "\n".join(lines).rstrip() + "\n"


def _order(index):
    return (0, index, "") if isinstance(index, int) else (1, 0, str(index))
