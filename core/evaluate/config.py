"""Every option of an MMMLU eval run, with the seed task as defaults, and its validation."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import UsageError

MODES = ("generate", "logprob")
DTYPES = ("auto", "bf16", "fp16", "fp32")
BACKENDS = ("generate", "continuous")


@dataclass
class EvalConfig:
    model: str = "Qwen/Qwen2.5-0.5B"  # Hub id or local folder
    data: str = "openai/MMMLU"  # Hub dataset id, local CSV, or a folder holding test/mmlu_<locale>.csv
    locale: str = "ZH_CN"
    subject: str = "moral_scenarios"  # or "all"
    limit: int | None = 100  # None: every selected question
    max_new_tokens: int = 512
    batch_size: int | str = "auto"
    dtype: str = "auto"
    mode: str = "generate"
    out: str | None = None  # run folder; default runs/<timestamp>-eval
    demo: bool = False  # tiny random Qwen2 + assets/mmmlu_demo_zh.csv, fully offline
    stop_at_answer: bool = False
    static_cache: bool = False
    compile: bool = False
    cuda_graphs: bool = False
    backend: str = "generate"  # or "continuous" (transformers generate_batch)
    free_finished: bool = True
    threads: int | None = None  # torch CPU threads; None: torch's default (the demo uses 1)

    def __post_init__(self):
        # The engine compiles only the static-cache decode step, so compile without it would
        # do nothing while the report listed it; the API gets what --compile gets.
        if self.compile:
            self.static_cache = True


def check_config(config: EvalConfig) -> None:
    if config.mode not in MODES:
        raise UsageError(f"--mode {config.mode} is not one of {', '.join(MODES)}")
    if config.dtype not in DTYPES:
        raise UsageError(f"--dtype {config.dtype} is not one of {', '.join(DTYPES)}")
    if config.backend not in BACKENDS:
        raise UsageError(f"--backend {config.backend} is not one of {', '.join(BACKENDS)}")
    if config.max_new_tokens < 1:
        raise UsageError(f"--max-new-tokens must be at least 1 (got {config.max_new_tokens})")
    if config.batch_size != "auto" and (not isinstance(config.batch_size, int) or config.batch_size < 1):
        raise UsageError(f"--batch-size must be a positive number or auto (got {config.batch_size})")
    if config.threads is not None and config.threads < 1:
        raise UsageError(f"--threads must be at least 1 (got {config.threads})")
