"""Every option of an MMMLU eval run: the seed task's defaults, help text, form labels and validation.

The CLI (`core/eval/cli.py`) and the app's Evaluate form are both built from these fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from core import DEMO_DATA_DIR
from core.errors import UsageError
from core.lm.quantize import QUANTIZE, quantize_option
from core.options import option, positive_int_or

DEMO_DATA = DEMO_DATA_DIR / "mmmlu_demo_zh.csv"  # bundled MMMLU-shaped questions for --demo
MODES = ("generate", "logprob")
DTYPES = ("auto", "bf16", "fp16", "fp32")
BACKENDS = ("generate", "continuous")
LETTER_CONVENTIONS = ("bare", "spaced", "both", "lm-eval")  # core/lm/engine.py score_choices says what each scores


@dataclass
class EvalConfig:
    model: str = option("Qwen/Qwen2.5-0.5B", "Hub id or local model folder.", label="Model",
                        placeholder="hub id or local folder")
    data: str = option("openai/MMMLU", "Hub dataset id, or a local MMMLU-shaped CSV (,Question,A,B,C,D,Answer,Subject).",
                       label="Data")
    locale: str = option("ZH_CN", "MMMLU language file for a Hub dataset: ZH_CN -> test/mmlu_ZH-CN.csv.", label="Locale")
    subject: str = option("moral_scenarios", "Subject to keep, or 'all'.", label="Subject")
    limit: int | None = option(100, "First N questions after the subject filter.", label="Limit")
    max_new_tokens: int = option(512, "Reply length limit; every other generation setting is the model's own.",
                                 label="Max new tokens")
    batch_size: int | str = option("auto", "Number, or auto (every question in one batch if memory allows, on a GPU "
                                   "or a CPU).", parse=positive_int_or("auto"), or_word="auto", label="Batch size")
    dtype: str = option("auto", "auto: bf16 on a GPU that supports it, else fp32.", choices=DTYPES, label="Dtype")
    mode: str = option("generate", "generate: greedy reply, answer read from its start. logprob: most likely of "
                       "A/B/C/D as the next token.", choices=MODES, label="Mode")
    out: str | None = option(None, "New run folder.", shown="runs/<timestamp>-eval", metavar="PATH")
    demo: bool = False  # tiny random Qwen2 + core/demo_data/mmmlu_demo_zh.csv, fully offline
    stop_at_answer: bool = option(False, "End a row once its answer letter is settled (changes outputs and timings).")
    static_cache: bool = option(False, "Static KV cache (no dropping of finished rows).")
    compile: bool = option(False, "torch.compile the decode step (GPU only; implies --static-cache).")
    cuda_graphs: bool = option(False, "CUDA graphs: compile mode reduce-overhead, or graphs in continuous batching "
                               "(GPU only).")
    backend: str = option("generate", "generate: batched model.generate. continuous: transformers continuous batching.",
                          choices=BACKENDS)
    free_finished: bool = option(True, "Drop finished rows from the batch and KV cache.")
    threads: int | None = option(None, "torch CPU threads (default: torch's choice; 1 for --demo).")
    adapter: list = option(factory=list, help="A LoRA adapter folder or fine-tune run folder to evaluate on top of "
                           "--model.", multiple=True, metavar="DIR")
    quantize: str = quantize_option()
    chat: bool = option(False, "Ask each question as the user turn of the tokenizer's chat template (instruction "
                        "models); the prompt the model saw is kept in every row and the summary.", label="Chat")
    # both is the default: on the demo models it picked the letter generate mode answered 49 times in 59, bare 36,
    # spaced 33, lm-eval 15 (docs/eval.md, "Scoring conventions").
    letters: str = option("both", "logprob mode, which answer tokens count: bare ('A' after the prompt's trailing "
                          "space), spaced (' A'), both (the two probabilities added), lm-eval (lm-evaluation-harness's "
                          "multiple_choice: ' A' after the prompt less its trailing space).", choices=LETTER_CONVENTIONS)

    def __post_init__(self):
        # The engine compiles only the static-cache decode step, so compile without it would
        # do nothing while the report listed it; the API gets what --compile gets.
        if self.compile:
            self.static_cache = True

    def validate(self) -> None:
        if self.mode not in MODES:
            raise UsageError(f"--mode {self.mode} is not one of {', '.join(MODES)}")
        if self.dtype not in DTYPES:
            raise UsageError(f"--dtype {self.dtype} is not one of {', '.join(DTYPES)}")
        if self.quantize not in QUANTIZE:
            raise UsageError(f"--quantize {self.quantize} is not one of {', '.join(QUANTIZE)}")
        if self.letters not in LETTER_CONVENTIONS:
            raise UsageError(f"--letters {self.letters} is not one of {', '.join(LETTER_CONVENTIONS)}")
        if self.backend not in BACKENDS:
            raise UsageError(f"--backend {self.backend} is not one of {', '.join(BACKENDS)}")
        if self.max_new_tokens < 1:
            raise UsageError(f"--max-new-tokens must be at least 1 (got {self.max_new_tokens})")
        if self.batch_size != "auto" and (not isinstance(self.batch_size, int) or self.batch_size < 1):
            raise UsageError(f"--batch-size must be a positive number or auto (got {self.batch_size})")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be at least 1 (got {self.threads})")


def demo_config(**overrides) -> EvalConfig:
    """The offline demo: a tiny random-weight Qwen2 on the bundled questions; it brings its own model and data."""
    for name in ("model", "data", "locale"):
        if name in overrides:
            raise UsageError(f"--demo brings its own model and data; drop --{name}, or drop --demo")
    return EvalConfig(demo=True, **overrides)


def check_config(config: EvalConfig) -> None:
    """Kept for callers of the earlier API: the checks are EvalConfig.validate()."""
    config.validate()
