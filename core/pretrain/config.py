"""Every option of a pretraining run: the seed task's defaults, help text, form labels and validation.

The CLI (`core/pretrain/cli.py`) and the app's Pretrain form are both built from these fields.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from core import DEMO_DATA_DIR
from core.errors import UsageError
from core.optim import OPTIMIZERS, SCHEDULES
from core.options import option
from core.trackers import check as check_tracker
from core.trackers import report_to_option

# `tiny` is a few-layer GPT-2 for CPUs and tests, `mid` a wider one whose blocks outweigh more of the
# output layer (the optimizer benches run both); `default` is transformers.GPT2Config() unchanged.
MODEL_PRESETS: dict[str, dict] = {
    "default": {},
    "tiny": {"n_layer": 2, "n_head": 2, "n_embd": 64, "n_positions": 256},
    "mid": {"n_layer": 4, "n_head": 4, "n_embd": 256, "n_positions": 256},
}

DEMO_CORPUS = DEMO_DATA_DIR / "demo_corpus.txt"
DEMO_CORPUS_ZH = DEMO_DATA_DIR / "demo_corpus_zh.txt"
DEMO_LANGUAGES = ("en", "zh")


@dataclass
class PretrainConfig:
    data: str = option("bookcorpus/bookcorpus", "Hub dataset id (streamed) or a local .txt/.jsonl/.csv/.parquet file "
                       "with a 'text' column.", label="Data", placeholder="hub id or local .txt/.jsonl/.csv/.parquet")
    rows: int = option(10_000, "Train on exactly the first N rows.", label="Rows")
    eval_rows: int = option(500, "Held-out rows taken after the training rows.")
    epochs: int = option(3, "Passes over the training rows.", label="Epochs")
    max_steps: int = option(0, "Stop after N optimizer steps, with the learning-rate schedule planned for N (0 = the "
                            "epochs decide): budgeted runs and smoke tests.")
    tokenizer: str = option("gpt2", "Hub id, local dir or tokenizer run folder; 'gpt2' falls back to the bundled exact "
                            "GPT-2 BPE offline; 'train' trains a byte-level BPE on the training rows first.",
                            label="Tokenizer")
    model_size: str = option("default", f"{' | '.join(MODEL_PRESETS)} ('default' is GPT2Config() unchanged, 124M).",
                             choices=tuple(MODEL_PRESETS), cli_choices=False, label="Model size")
    # 8 x 128 tokens per step gives an estimated 400-500 optimizer steps on the seed task. Larger
    # batches train faster per token but leave too few steps: on CPU with the tiny preset,
    # 16 x 256 (21 steps) ended at held-out loss 9.58, 8 x 128 (75 steps) at 6.23, against 8.42
    # for the Trainer baseline (bench/README.md, "CPU evidence"). Re-check on a GPU with --levers.
    block_size: int = option(128, "Tokens per packed sequence.")
    batch_size: int = option(8, "Sequences per optimizer step.", label="Batch size")
    lr: float = option(1e-3, "Peak learning rate (warm-up, then the --schedule).", label="Learning rate")
    min_lr_ratio: float = 0.1            # the schedules decay to lr * min_lr_ratio
    warmup: float = option(0.05, "Linear warm-up: a share of the steps (below 1) or a number of steps (1 or more).")
    schedule: str = option("cosine", "After the warm-up: cosine or linear decay to 10% of --lr, constant, or wsd "
                           "(stable at the peak, cosine decay over the last 20% of the steps).", choices=SCHEDULES)
    optimizer: str = option("auto", "auto, adamw or muon. muon: torch's Muon on the blocks' attention and MLP matrices, "
                            "AdamW on the embeddings (tied to the output layer), LayerNorms and biases. auto is muon, "
                            "which measured the lower held-out loss at equal wall time (bench/README.md, AdamW or "
                            "Muon), and adamw with --fsdp (Muon needs each matrix whole).",
                            choices=("auto", *OPTIMIZERS), label="Optimizer")
    weight_decay: float = option(0.1, "AdamW weight decay, on matrices only (not biases or LayerNorm gains); seed 004 "
                                 "found 0.1 mattered.")
    dropout: float = option(0.1, "Dropout of GPT-2's residual, embedding and attention layers (GPT2Config's 0.1); "
                            "0 makes runs on any number of processes match step for step.")
    eval_every: int = option(0, "Also measure the held-out loss (and draw samples) every N steps, not only at epoch ends.")
    early_stop: int = option(0, "Stop after this many held-out-loss checks without improvement (0 = never).")
    sample_prompts: list = option(factory=list, help="A prompt the model continues after every held-out check "
                                  "(repeatable; default: a few per language of the data).", multiple=True, metavar="TEXT")
    sample_tokens: int = option(32, "New tokens per generation sample (0 = no samples).")
    tokenizer_vocab: int = option(8000, "With --tokenizer train: the vocabulary of the byte-level BPE trained on the "
                                  "training rows first.")
    grad_clip: float = 1.0               # clip the global gradient norm at this value (0 = off)
    seed: int = option(1337, "Random seed.")
    compile: bool = option(False, "torch.compile the model (fixed shapes: one compile, timed as its own phase).",
                           label="Compile")
    fsdp: bool = option(False, "Shard the model over the --processes with torch's FSDP2 (per transformer block; bf16 "
                        "compute on a GPU): each rank holds 1/N of the weights, gradients and optimizer state. "
                        "Checkpoints are sharded; model/ is a normal folder.", label="FSDP")
    chunked_loss: str = option("auto", "Cross-entropy through the output layer 128 positions at a time, never holding the "
                               "full-vocabulary logits: on, off, or auto (on a CPU, where it measured faster; off on a "
                               "GPU until measured there). One process only (DDP and FSDP use the plain loss).")
    bf16: bool = True                    # bf16 autocast where the GPU supports it
    tf32: bool = True                    # TF32 matmuls on Ampere and newer
    fused_adamw: bool = True             # one fused kernel for the whole optimizer step on CUDA
    log_every: int = option(5, "Read the loss back every K steps (with fused AdamW the loop's only host sync).")
    token_cache: bool = option(True, "Reuse token ids cached by an earlier run on the same data "
                               "(--no-token-cache tokenizes again).")
    num_proc: int = option(1, "Processes that tokenize the data into memory-mapped token shards (the token cache).")
    micro_batch_size: int = option(0, "Sequences per forward pass; 0 = whole batch (halved automatically on "
                                   "out-of-memory).")
    save_every: int = option(0, "Checkpoint every N optimizer steps and at the end (0 = off).")
    save_minutes: float = option(10.0, "Also checkpoint after this many minutes since the last one (0 = off).")
    max_nonfinite: int = 5               # stop after this many non-finite losses in a row (each one skips its update)
    report_to: str = report_to_option()
    out: str | None = option(None, "Run directory (must not exist yet).", label="Output",
                             placeholder="new folder under the runs folder", shown="runs/<timestamp>-pretrain")
    demo: bool = False
    model_overrides: dict = option(cli=False, factory=dict)  # GPT2Config fields changed on top of the preset

    def validate(self) -> None:
        check_tracker(self.report_to)
        if not 0 <= self.dropout < 1:
            raise UsageError(f"--dropout {self.dropout} must be at least 0 and below 1")
        for name in ("rows", "epochs", "block_size", "batch_size", "log_every", "max_nonfinite", "num_proc"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1 (got {getattr(self, name)})")
        if self.block_size < 2:  # a block's first token is never predicted, so one token teaches nothing
            raise UsageError(f"--block-size must be at least 2 (got {self.block_size})")
        if self.eval_rows < 0:
            raise UsageError(f"--eval-rows must be 0 or more (got {self.eval_rows})")
        for name in ("micro_batch_size", "save_every", "save_minutes"):
            if not getattr(self, name) >= 0:
                raise UsageError(f"--{name.replace('_', '-')} must be 0 or more (got {getattr(self, name)})")
        if not self.lr > 0:
            raise UsageError(f"--lr must be a positive number (got {self.lr})")
        if self.chunked_loss not in ("auto", "on", "off"):
            raise UsageError(f"--chunked-loss {self.chunked_loss} is not one of auto, on, off")
        if self.optimizer not in ("auto", *OPTIMIZERS):
            raise UsageError(f"--optimizer {self.optimizer} is not one of auto, {', '.join(OPTIMIZERS)}")
        if self.optimizer == "muon" and self.fsdp:  # Muon orthogonalizes whole matrices; FSDP2 gives each rank a slice
            raise UsageError("--optimizer muon needs each weight matrix whole, and --fsdp splits them over the ranks: "
                             "use --optimizer adamw with --fsdp, or muon without --fsdp")
        if self.schedule not in SCHEDULES:
            raise UsageError(f"--schedule {self.schedule} is not one of {', '.join(SCHEDULES)}")
        if not self.warmup >= 0:
            raise UsageError(f"--warmup must be 0 or more: a share of the steps below 1, or a number of steps "
                             f"(got {self.warmup})")
        for name in ("eval_every", "early_stop", "sample_tokens", "max_steps"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name.replace('_', '-')} must be 0 or more (got {getattr(self, name)})")
        if self.tokenizer == "train" and self.tokenizer_vocab < 257:
            raise UsageError(f"--tokenizer-vocab {self.tokenizer_vocab} is below the 256 byte symbols plus <|endoftext|>")
        if self.model_size not in MODEL_PRESETS:
            raise UsageError(f"unknown --model-size {self.model_size!r}; choose one of: {', '.join(MODEL_PRESETS)}")
        if self.block_size > self.context:
            raise UsageError(f"--block-size {self.block_size} exceeds the model's context of {self.context} tokens")

    @property
    def context(self) -> int:
        """The model's context (n_positions): the preset's, unless model_overrides changes it."""
        return int({**MODEL_PRESETS[self.model_size], **self.model_overrides}.get("n_positions", 1024))

    @property
    def optimizer_used(self) -> str:
        """--optimizer as the run uses it: auto is muon (it measured better), or adamw with --fsdp."""
        if self.optimizer != "auto":
            return self.optimizer
        return "adamw" if self.fsdp else "muon"

    def to_dict(self) -> dict:
        return {"kind": "pretrain", **asdict(self)}


def demo_config(language: str = "en", **overrides) -> PretrainConfig:
    """The offline demos, about a minute on 2 cores with the tiny model.

    en: the bundled synthetic BookCorpus-shaped corpus and the bundled GPT-2 BPE (the seed task's flow).
    zh: seed 004's lessons: the bundled Chinese corpus of our own, a byte-level BPE trained on it
    first (compression against GPT-2's in the log and summary), blocks of 128, warm-up and weight
    decay, and generation samples at every held-out check.
    """
    if language not in DEMO_LANGUAGES:
        raise UsageError(f"--demo {language} is not one of {', '.join(DEMO_LANGUAGES)}")
    if language == "zh":
        cfg = PretrainConfig(data=str(DEMO_CORPUS_ZH), rows=5400, eval_rows=600, epochs=8, tokenizer="train",
                             tokenizer_vocab=4000, model_size="tiny", block_size=128, batch_size=8, lr=3e-3, log_every=2,
                             sample_tokens=24, demo=True)
    else:
        cfg = PretrainConfig(
            data=str(DEMO_CORPUS), rows=2000, eval_rows=200, epochs=3, tokenizer="gpt2-bundled",
            model_size="tiny", block_size=128, batch_size=8, lr=3e-3, log_every=2, demo=True,
        )
    for key, value in overrides.items():
        setattr(cfg, key, value)
    return cfg
