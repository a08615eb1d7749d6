"""Every option of a LoRA fine-tuning run (defaults from seed 001), with help, form labels and checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from core import DEMO_DATA_DIR
from core.errors import UsageError
from core.lm.quantize import QUANTIZE, quantize_option
from core.options import option, refuse_with_demo
from core.trackers import check as check_tracker
from core.trackers import report_to_option

DEMO_EXAMS = DEMO_DATA_DIR / "exams_demo.csv"
SPLIT_BY = ("question", "subject")
TEMPLATES = ("auto", "mmmlu", "alpaca", "math", "chat")
ENSEMBLE_DATA = ("bootstrap", "disjoint")


@dataclass
class FinetuneConfig:
    model: str = option("Qwen/Qwen2.5-0.5B", "Base model: hub id, local folder, or an llmlab pretraining run folder.",
                        label="Model", placeholder="hub id, local folder or run folder")
    data: str = option("", "Exam CSV (Question,A,B,C,D,Answer,Subject), a folder of per-subject CSVs, alpaca "
                       ".json/.jsonl in seed 001's form, or seed 002's JSONL (a passage and its sub-questions per "
                       "record) (required unless --demo).", label="Data",
                       placeholder="exam CSV, per-subject folder, alpaca json or passages jsonl", shown="none")
    template: str = option("auto", "auto: mmmlu for exams, math for math data. mmmlu: llmlab eval's prompt, target "
                           "'{letter}) {option}'. alpaca: seed 001's 'The right option is X.' form. math: llmlab math's "
                           "prompt, the solution as target. chat: auto's prompt as the user turn and its target as the "
                           "assistant turn of the tokenizer's chat template (instruction models); loss on the "
                           "assistant's tokens only.", choices=TEMPLATES, label="Template")
    quantize: str = quantize_option()
    rank: int = option(16, "LoRA rank r.", label="Rank")
    alpha: int = option(32, "LoRA alpha (the update is scaled by alpha / rank).", label="Alpha")
    dropout: float = option(0.05, "LoRA dropout.")
    targets: str = option("auto", "Modules to adapt: auto (attention projections: q/k/v/o for Qwen2/Llama, "
                          "c_attn/c_proj for GPT-2), all-linear, or comma-separated names.", label="Targets")
    lr: float = option(1e-4, "Peak learning rate (warm-up, then cosine decay).", label="Learning rate")
    epochs: int = option(2, "Passes over the training set (shuffle copies included).", label="Epochs")
    max_steps: int = option(0, "Stop after N optimizer steps, with the learning-rate schedule planned for N (0 = the "
                            "epochs decide): budgeted runs and smoke tests.")
    batch_size: int = option(8, "Examples per optimizer step.", label="Batch size")
    micro_batch_size: int = option(0, "Examples per forward pass; 0 = whole batch (halved on out-of-memory).")
    max_length: int = option(512, "Tokens per example; longer prompts lose their beginning, the target is kept.")
    shuffle_copies: int = option(1, "Copies of each training question: as given, plus K-1 distinct permutations of "
                                 "its options (seed 001 used 6).", label="Shuffle copies")
    split_by: str = option("question", "question: per-subject quotas of val/test questions. subject: hold out whole "
                           "subjects.", choices=SPLIT_BY)
    val_per_subject: int = option(20, "Val questions per subject (--split-by question).", label="Val per subj")
    test_per_subject: int = option(20, "Test questions per subject (--split-by question).", label="Test per subj")
    val_fraction: float = option(0.1, "Share of subjects held out for val (--split-by subject).")
    test_fraction: float = option(0.1, "Share of subjects held out for test (--split-by subject).")
    eval_every: int = option(0, "Also compute the val loss every N optimizer steps (0 = at epoch ends only).")
    early_stop: int = option(0, "Stop after this many val-loss checks without improvement (0 = never).")
    log_every: int = option(5, "Read the training loss back (and log it) every K optimizer steps.")
    save_every: int = option(0, "Checkpoint every N optimizer steps and at the end (0 = off).")
    max_nonfinite: int = 5            # stop after this many non-finite losses in a row (each one skips its update)
    test_max_new_tokens: int = option(32, "Reply length for the before/after test answers.")
    gradient_checkpointing: bool | None = option(None, "Recompute activations in the backward pass (less memory, ~30% "
                                                 "slower).", shown="on with --quantize, else off")
    ensemble: int = option(1, "Train K adapters with the same settings that differ by seed and by data, answer the test "
                           "split with each over one loaded base, and vote (seed 002's recipe: 9 voting).",
                           label="Ensemble")
    ensemble_data: str = option("bootstrap", "Each ensemble adapter's training data: bootstrap (a resample of the "
                                "training split with replacement) or disjoint (its own share of it); val and test are "
                                "shared.", choices=ENSEMBLE_DATA)
    retain_check: str | None = option(None, "A SQuAD v1.1 file: score base and tuned model on it and report retention "
                                      "(after / before for EM and F1).", metavar="SQUAD")
    retain_threshold: float = option(0.9, "Flag the run when a retention is below this (the contests ask 0.9).")
    retain_limit: int | None = option(None, "Score only the first N questions of --retain-check.")
    fsdp: bool = option(False, "Shard the frozen base model over the --processes with torch's FSDP2 (per transformer "
                        "block; bf16 compute on a GPU) while the adapter trains; not with a quantized base. "
                        "Checkpoints are sharded; adapter/ is a normal peft folder.", label="FSDP")
    num_proc: int = option(1, "Processes that tokenize the examples (written once as memory-mapped token shards).")
    bf16: bool = True                 # bf16 autocast where the GPU supports it
    grad_clip: float = 1.0
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    seed: int = option(1234, "Random seed (splits, shuffle copies, data order, LoRA init).")
    save_minutes: float = option(10.0, "Checkpoint after this many minutes since the last one (0 = only on stop).")
    threads: int | None = option(None, "torch CPU threads (default: torch's choice; 1 for --demo).")
    report_to: str = report_to_option()
    out: str | None = option(None, "Run directory (must not exist yet).", label="Output",
                             placeholder="new folder under the runs folder", shown="runs/<timestamp>-finetune")
    demo: bool = False

    def validate(self) -> None:
        check_tracker(self.report_to)
        if not str(self.data).strip():
            raise UsageError("--data is required: an exam CSV (Question,A,B,C,D,Answer,Subject), a folder of per-subject "
                             "CSVs or alpaca .json/.jsonl; or run 'llmlab finetune --demo'")
        for name in ("rank", "alpha"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name} must be at least 1 (got {getattr(self, name)})")
        for name in ("epochs", "batch_size", "max_length", "shuffle_copies", "test_max_new_tokens", "log_every",
                     "max_nonfinite", "num_proc"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        if self.shuffle_copies > 24:
            raise UsageError(f"--shuffle-copies {self.shuffle_copies} is more than the 24 orders of four options")
        for name in ("micro_batch_size", "val_per_subject", "test_per_subject", "eval_every", "early_stop", "save_minutes",
                     "save_every", "max_steps"):
            if not getattr(self, name) >= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be 0 or more (got {getattr(self, name)})")
        if not 0 <= self.dropout < 1:
            raise UsageError(f"--dropout must be in [0, 1) (got {self.dropout})")
        if not self.lr > 0:
            raise UsageError(f"--lr must be a positive number (got {self.lr})")
        for name in ("val_fraction", "test_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be in [0, 1) (got {getattr(self, name)})")
        if self.template not in TEMPLATES:
            raise UsageError(f"--template {self.template} is not one of {', '.join(TEMPLATES)}")
        if self.quantize not in QUANTIZE:
            raise UsageError(f"--quantize {self.quantize} is not one of {', '.join(QUANTIZE)}")
        if not 1 <= self.ensemble <= 32:
            raise UsageError(f"--ensemble must be between 1 and 32 adapters (got {self.ensemble})")
        if self.ensemble_data not in ENSEMBLE_DATA:
            raise UsageError(f"--ensemble-data {self.ensemble_data} is not one of {', '.join(ENSEMBLE_DATA)}")
        if self.split_by not in SPLIT_BY:
            raise UsageError(f"--split-by {self.split_by} is not one of {', '.join(SPLIT_BY)}")
        if self.threads is not None and self.threads < 1:
            raise UsageError(f"--threads must be at least 1 (got {self.threads})")
        if not 0 < self.retain_threshold <= 1:
            raise UsageError(f"--retain-threshold must be in (0, 1] (got {self.retain_threshold})")
        if self.fsdp and self.quantize != "none":
            raise UsageError(f"--fsdp cannot shard a --quantize {self.quantize} base: FSDP2 shards plain floating-point "
                             f"parameters and bitsandbytes' packed 4-bit/8-bit weights are not; use --fsdp with a bf16 "
                             f"base (no --quantize), or --quantize without --fsdp")
        if self.fsdp and self.ensemble > 1:
            raise UsageError(f"--fsdp trains one adapter over a sharded base; --ensemble {self.ensemble} trains several "
                             f"over one whole base in turn: drop one of them")

    @property
    def checkpointing(self) -> bool:
        """Gradient checkpointing as the run uses it: as asked, else on for a quantized base."""
        return self.quantize != "none" if self.gradient_checkpointing is None else bool(self.gradient_checkpointing)

    def to_dict(self) -> dict:
        return asdict(self)


def demo_config(**overrides) -> FinetuneConfig:
    """The offline demo: the bundled exam CSV and the eval demo's tiny model; about a minute on 2 cores."""
    refuse_with_demo(overrides)
    cfg = FinetuneConfig(model="demo", data=str(DEMO_EXAMS), rank=8, alpha=16, lr=3e-3, epochs=6, batch_size=8,
                         max_length=192, shuffle_copies=2, val_per_subject=3, test_per_subject=3, test_max_new_tokens=12,
                         demo=True)
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg
