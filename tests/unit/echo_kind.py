"""A made-up job kind for the slot-in test: `llmlab echo --text hi` writes its text into its run folder.

It is everything a new kind brings (config with option metadata, a Job, a click command and the
KIND record); the test adds it to core.kinds.PACKAGES and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from core.errors import UsageError
from core.kinds import Kind
from core.lifecycle import Job, RunContext, run_job
from core.options import click_options, given, option


@dataclass
class EchoConfig:
    text: str = option("hello", "What to write.", label="Text")
    times: int = option(1, "How often.", label="Times")
    out: str | None = option(None, "Run folder.")

    def validate(self) -> None:
        if self.times < 1:
            raise UsageError(f"--times must be at least 1 (got {self.times})")


class EchoJob(Job):
    kind = "echo"

    def prepare(self) -> None:
        self.config.validate()

    def run(self, ctx: RunContext) -> dict:
        text = " ".join([self.config.text] * self.config.times)
        (ctx.run_dir / "echo.txt").write_text(text, encoding="utf-8")
        ctx.optimizations.append("none needed")
        return {"chars": len(text)}

    def report(self, run_dir: Path, summary: dict) -> str:
        return f"# echo\n\n{summary.get('chars')} characters, status {summary['status']}\n"


@click.command()
@click_options(EchoConfig)
def echo_command(**options) -> int:
    """Write --text into the run folder."""
    summary = run_job(EchoJob(EchoConfig(**given(EchoConfig, options))))
    return 0 if summary["status"] == "completed" else 1


KIND = Kind(name="echo", noun="an echo run", command="echo_kind:echo_command", help="Write a text into a run folder.",
            figures=("chars", "total_seconds"), headline=lambda s: f"{s.get('chars')} chars")
