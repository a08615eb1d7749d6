"""Every option of a math-accuracy run (seed 003): generate replies or score saved ones, by numeric value."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from core import DEMO_DATA_DIR
from core.errors import UsageError
from core.lm.choice import DEFAULT_MODEL
from core.lm.quantize import quantize_option
from core.options import check_template, option, positive_int_or, refuse_with_demo
from core.qa.math import PROMPT

DEMO_MATH = DEMO_DATA_DIR / "math_demo.jsonl"


@dataclass
class MathConfig:
    data: str = option("", "JSON Lines with problem/solution (seed 003's form) or question/answer rows; ids from an "
                       "'id' field or the line number (required unless --demo).", shown="none")
    model: str | None = option(None, "Hub id or local model folder that answers (not with --predictions).",
                               shown=DEFAULT_MODEL)
    adapter: list = option(factory=list, help="A LoRA adapter (folder or fine-tune run folder) on top of --model; adds "
                           "the trainable ratio and the contest score.", multiple=True, metavar="DIR")
    predictions: str | None = option(None, "Score this {id: reply} JSON file instead of generating.", metavar="FILE")
    prompt: str = option(PROMPT, "The prompt; {problem} is filled in.", shown="Question: {problem}\\nAnswer:")
    max_new_tokens: int = option(64, "Reply length limit.")
    stop_at_newline: bool = option(True, "End each reply at its first newline (a solution is one line).")
    tolerance: float = option(1e-6, "Relative tolerance within which two numbers are the same answer.")
    limit: int | None = option(None, "First N questions only.")
    batch_size: int | str = option("auto", "Number, or auto (every question in one batch if memory allows).",
                                   parse=positive_int_or("auto"), or_word="auto")
    dtype: str = option("auto", "auto: bf16 on a GPU that supports it, else fp32.", choices=("auto", "bf16", "fp16", "fp32"))
    quantize: str = quantize_option()
    chat: bool = option(False, "Ask each question as the user turn of the tokenizer's chat template (instruction models).")
    threads: int | None = option(None, "torch CPU threads (default: torch's choice; 1 for --demo).")
    out: str | None = option(None, "New run folder.", shown="runs/<timestamp>-math", metavar="PATH")
    demo: bool = False

    def validate(self) -> None:
        if not str(self.data).strip():
            raise UsageError("--data is required: a .jsonl of problem/solution rows; or run 'llmlab math --demo'")
        if self.max_new_tokens < 1:
            raise UsageError(f"--max-new-tokens must be at least 1 (got {self.max_new_tokens})")
        if self.limit is not None and self.limit < 1:
            raise UsageError(f"--limit must be at least 1 (got {self.limit})")
        if self.predictions and (self.adapter or self.model):
            raise UsageError("--predictions scores saved replies, so no model answers; drop --model and --adapter")
        if len(self.adapter) > 1:
            raise UsageError("give one --adapter per math run")
        check_template(self.prompt, ("problem",))
        if "{problem}" not in self.prompt:
            raise UsageError("--prompt must contain {problem}")
        if not 0 <= self.tolerance < 1:
            raise UsageError(f"--tolerance must be in [0, 1) (got {self.tolerance})")

    def to_dict(self) -> dict:
        return asdict(self)


def demo_config(**overrides) -> MathConfig:
    refuse_with_demo(overrides)
    cfg = MathConfig(data=str(DEMO_MATH), demo=True, threads=1, max_new_tokens=24)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg
