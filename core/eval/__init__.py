"""MMMLU evaluation: batched generation or log-prob scoring, one logged row per question."""

from core.kinds import Kind


def headline(summary: dict) -> str:
    if not isinstance(summary.get("accuracy"), (int, float)):
        return ""
    n = summary.get("n")
    return f"acc {summary['accuracy'] * 100:.1f}%" + (f" of {n}" if n else "")


KIND = Kind(
    name="eval", noun="an eval run", config="core.eval.config:EvalConfig", job="core.eval.run:EvalJob",
    runner="core.eval.multi:run_eval_command", demo="core.eval.config:demo_config",
    demo_help="Offline demo: tiny random-weight Qwen2 on bundled Chinese questions.", processes=True,
    help="Evaluate a causal LM on MMMLU (default: Qwen2.5-0.5B, Chinese, moral_scenarios, first 100).",
    figures=("accuracy", "correct", "n", "mode", "model", "tokens_per_second", "generate_seconds", "total_seconds"),
    headline=headline, resumable=True, plan="core.eval.plan:memory_plan", results=True,
)
