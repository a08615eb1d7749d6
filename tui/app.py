"""Placeholder app entry point."""


def run_app() -> None:
    raise SystemExit("llmlab app is not built yet")
