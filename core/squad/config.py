"""Every option of a SQuAD reading-comprehension run: generate answers or score saved ones."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from core import DEMO_DATA_DIR
from core.errors import UsageError
from core.lm.choice import DEFAULT_MODEL
from core.lm.quantize import quantize_option
from core.options import check_template, option, positive_int_or, refuse_with_demo
from core.qa.squad import PROMPT

DEMO_SQUAD = DEMO_DATA_DIR / "squad_demo.json"


@dataclass
class SquadConfig:
    data: str = option("", "SQuAD v1.1: the official nested JSON, or flat rows (id, title, context, question, answers) "
                       "as JSON, JSONL or Parquet (required unless --demo).", shown="none")
    model: str | None = option(None, "Hub id or local model folder that answers (not with --predictions).",
                               shown=DEFAULT_MODEL)
    adapter: list = option(factory=list, help="A LoRA adapter (folder or fine-tune run folder) on top of --model.",
                           multiple=True, metavar="DIR")
    predictions: str | None = option(None, "Score this official {id: answer} JSON file instead of generating.", metavar="FILE")
    baseline: bool = option(False, "With --adapter: also answer with the base model alone and report retention "
                            "(after / before for EM and F1).")
    prompt: str = option(PROMPT, "The prompt; {context}, {question} and {title} are filled in.", shown="Context: ...")
    max_new_tokens: int = option(32, "Answer length limit; each answer also ends at its first newline.")
    limit: int | None = option(None, "First N questions only.")
    batch_size: int | str = option("auto", "Number, or auto (every question in one batch if memory allows).",
                                   parse=positive_int_or("auto"), or_word="auto")
    dtype: str = option("auto", "auto: bf16 on a GPU that supports it, else fp32.", choices=("auto", "bf16", "fp16", "fp32"))
    retain_threshold: float = option(0.9, "With --baseline: the retention (after / before) below which the run is flagged.")
    quantize: str = quantize_option()
    chat: bool = option(False, "Ask each question as the user turn of the tokenizer's chat template (instruction models).")
    threads: int | None = option(None, "torch CPU threads (default: torch's choice; 1 for --demo).")
    out: str | None = option(None, "New run folder.", shown="runs/<timestamp>-squad", metavar="PATH")
    demo: bool = False

    def validate(self) -> None:
        if not str(self.data).strip():
            raise UsageError("--data is required: a SQuAD v1.1 JSON, JSONL or Parquet file; or run 'llmlab squad --demo'")
        if self.max_new_tokens < 1:
            raise UsageError(f"--max-new-tokens must be at least 1 (got {self.max_new_tokens})")
        if self.limit is not None and self.limit < 1:
            raise UsageError(f"--limit must be at least 1 (got {self.limit})")
        if self.baseline and not self.adapter:
            raise UsageError("--baseline compares base and base + adapter: give --adapter too")
        if self.predictions and (self.adapter or self.baseline or self.model):
            raise UsageError("--predictions scores saved answers, so no model answers; drop --model, --adapter and "
                             "--baseline")
        if len(self.adapter) > 1:
            raise UsageError("give one --adapter per SQuAD run")
        check_template(self.prompt, ("context", "question", "title"))
        for key in ("{context}", "{question}"):
            if key not in self.prompt:
                raise UsageError(f"--prompt must contain {key}")
        if not 0 < self.retain_threshold <= 1:
            raise UsageError(f"--retain-threshold must be in (0, 1] (got {self.retain_threshold})")

    def to_dict(self) -> dict:
        return asdict(self)


def demo_config(**overrides) -> SquadConfig:
    refuse_with_demo(overrides)
    cfg = SquadConfig(data=str(DEMO_SQUAD), demo=True, threads=1)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg
