"""Math questions scored by numeric value, and seed 003's score: (1 - trainable ratio) * 0.3 + accuracy * 0.7."""

from core.kinds import Kind


def headline(summary: dict) -> str:
    if not isinstance(summary.get("accuracy"), (int, float)):
        return ""
    text = f"acc {summary['accuracy'] * 100:.1f}% of {summary.get('n')}"
    return text + (f", score {summary['score']:.4f}" if isinstance(summary.get("score"), (int, float)) else "")


KIND = Kind(
    name="math", noun="a math run", config="core.math.config:MathConfig", job="core.math.run:MathJob",
    demo="core.math.config:demo_config", demo_help="Offline demo: bundled math questions and the tiny demo model.",
    processes=True,
    help="Math accuracy by numeric value (last number), with the contest score for an adapter.",
    figures=("accuracy", "correct", "n", "score", "trainable_ratio", "model", "generate_seconds", "total_seconds"),
    headline=headline, results=True,
)
