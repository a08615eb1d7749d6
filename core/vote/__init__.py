"""Majority votes across runs over the same questions (seed 002 reached its best score with 9 adapters voting)."""

from core.kinds import Kind


def headline(summary: dict) -> str:
    if not isinstance(summary.get("accuracy"), (int, float)):
        return ""
    best = max((r.get("accuracy") or 0 for r in summary.get("runs", [])), default=0)
    return f"acc {summary['accuracy'] * 100:.1f}% (best run {best * 100:.1f}%) of {summary.get('n')}"


KIND = Kind(
    name="vote", noun="a vote run", config="core.qa.vote:VoteConfig", job="core.qa.vote:VoteJob",
    help="Combine eval runs over the same questions by majority vote (ties: the more accurate run).",
    figures=("accuracy", "correct", "n", "ties", "total_seconds"), headline=headline, results=True,
)
