"""A made-up job kind for the slot-in test: `llmlab echo --text hi` writes its text into its run folder.

It is everything a new kind brings (a config with option metadata, a Job and the KIND record naming
both); its command is built from that record. The test adds it to core.kinds.PACKAGES and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.errors import UsageError
from core.kinds import Kind
from core.lifecycle import Job, RunContext
from core.options import option


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


KIND = Kind(name="echo", noun="an echo run", config="echo_kind:EchoConfig", job="echo_kind:EchoJob",
            help="Write a text into a run folder.", figures=("chars", "total_seconds"),
            headline=lambda s: f"{s.get('chars')} chars")
