"""SQuAD v1.1 reading comprehension: the retention check of the fine-tuning contests (seeds 001, 003)."""

from core.kinds import Kind


def headline(summary: dict) -> str:
    if not isinstance(summary.get("f1"), (int, float)):
        return ""
    text = f"EM {summary['exact_match']:.1f} F1 {summary['f1']:.1f}"
    retention = (summary.get("retention") or {}).get("f1")
    return text + (f", kept {retention:.0%}" if isinstance(retention, (int, float)) else "")


KIND = Kind(
    name="squad", noun="a SQuAD run", config="core.squad.config:SquadConfig", job="core.squad.run:SquadJob",
    demo="core.squad.config:demo_config", demo_help="Offline demo: bundled SQuAD-shaped questions and the tiny demo model.",
    processes=True,
    help="SQuAD v1.1 EM/F1 of a model (+ adapter), or of a predictions file; --baseline for retention.",
    figures=("exact_match", "f1", "n", "retention", "model", "generate_seconds", "total_seconds"),
    headline=headline, results=True,
)
