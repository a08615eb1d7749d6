"""One pretraining run on the shared lifecycle (core/lifecycle.py): the work between "start" and "end".

Phases (each timed and logged): tokenizer_load, data (read rows), tokenize (or load cached ids),
model_init, compile (with --compile), train, save, report.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from core.distributed import world
from core.errors import UsageError
from core.hardware import peak_bf16_flops, snapshot
from core.lifecycle import Job, RunContext, run_job
from core.pretrain.config import PretrainConfig
from core.pretrain.data import is_shard_folder, load_tokens
from core.runlog import Phase, Plan, Sample
from core.runs import REPORT
from core.signals import StopRequest

# What each token-cache outcome adds to `optimizations`: only a cache that was read or written counts.
CACHE_OPTIMIZATION = {"hit": "token ids read from the on-disk cache (no tokenizing)",
                      "written": "token ids cached on disk for the next run",
                      "given": "token ids read from the token shards given as --data (no tokenizing)"}


def _eval_loss(result) -> float | None:
    """The held-out loss the run ended with: the last epoch end's, or the check made where --max-steps ended it."""
    if result.max_steps_reached and result.evals:
        return result.evals[-1][2]
    return result.eval_losses[-1] if result.eval_losses else None


def resume_config(run_dir: str | Path) -> tuple[PretrainConfig, Path]:
    """The config of a pretraining run to resume and its newest complete checkpoint."""
    from core.checkpoints import resume_checkpoint
    from core.options import config_from_record
    from core.runlog.reader import load_run_config

    path, config = load_run_config(run_dir, "pretrain")
    return config_from_record(PretrainConfig, config, str(path)), resume_checkpoint(path)


class PretrainJob(Job):
    kind = "pretrain"
    stop_message = "finishing the current step, then saving a checkpoint and the model"
    interrupted_twice = "interrupted twice; stopped without saving the model"

    def __init__(self, config: PretrainConfig, resume_from: Path | None = None, resume: bool = False,
                 on_step: Callable[[int, int], None] | None = None, build_model: Callable | None = None) -> None:
        """`resume`: config.out is a stopped run to continue from its newest checkpoint (or from `resume_from`)."""
        super().__init__(config, resume=resume or resume_from is not None)
        self.resume_from = resume_from
        self.on_step = on_step
        self.build_model = build_model
        self.phases: dict[str, float] = {}
        self.notes: list[str] = []

    def prepare(self) -> None:
        """Tokenizer and token ids first: bad input (a missing file, no 'text' column, no network) leaves nothing behind."""
        from transformers.utils import logging as hf_logging

        from core.lm.tokenizers import load_tokenizer

        cfg = self.config
        cfg.validate()
        if self.resume and self.resume_from is None:
            from core.checkpoints import resume_checkpoint

            self.resume_from = resume_checkpoint(Path(cfg.out))
        hf_logging.disable_progress_bar()  # our own bar is the one progress display
        t = time.perf_counter()
        corpus, self.trained = None, None
        saved = Path(cfg.out) / "tokenizer" if self.resume else None
        shared = getattr(self, "shared_tokenizer", None)
        if shared is not None:  # a rank other than 0 takes the tokenizer rank 0 trained, so every rank has the same ids
            self.tok, self.tok_source, self.trained = shared
            self.phases["tokenizer_train"] = 0.0
        elif cfg.tokenizer == "train" and is_shard_folder(cfg.data):
            raise UsageError(f"--tokenizer train needs text, and --data {cfg.data} holds token ids; pass the tokenizer "
                             f"they were made with (--tokenizer)")
        elif cfg.tokenizer == "train" and not (saved and (saved / "tokenizer.json").is_file()):
            corpus, self.trained = self._train_tokenizer()
            self.tok = self.trained["tokenizer"]
            short = "" if len(self.tok) >= self.config.tokenizer_vocab else \
                f" of the {self.config.tokenizer_vocab:,} asked: no more pairs occur twice"
            self.tok_source = f"byte-level BPE trained on the training rows ({len(self.tok):,} tokens{short})"
            self.phases["tokenizer_train"] = time.perf_counter() - t
        else:
            self.tok, self.tok_source = load_tokenizer(str(saved) if cfg.tokenizer == "train" else cfg.tokenizer)
            self.phases["tokenizer_load"] = time.perf_counter() - t
        if len(self.tok) <= 1 or self.tok.eos_token_id is None:
            # transformers builds an empty tokenizer from a folder that holds only a config.json.
            raise UsageError(f"--tokenizer {cfg.tokenizer} has no vocabulary or no end-of-text token "
                             f"(no tokenizer.json, or vocab.json and merges.txt?); pass a tokenizer folder or --tokenizer gpt2")
        self.tokens, self.cache_state = load_tokens(cfg, self.tok, self.notes, self.phases, corpus)
        if cfg.sample_tokens:
            from core.pretrain.samples import default_prompts, language_of

            self.language = language_of([self.tok.decode(self.tokens.train_ids[:4000].tolist())])
            self.prompts = tuple(cfg.sample_prompts) or default_prompts(self.language)
            context = cfg.context
            too_long = [p for p in self.prompts if len(self.tok(p)["input_ids"]) + cfg.sample_tokens > context]
            if too_long:
                raise UsageError(f"sample prompt {too_long[0][:40]!r} and --sample-tokens {cfg.sample_tokens} do not fit the "
                                 f"model's {context}-token context; shorten the prompt or lower --sample-tokens")

    def _train_tokenizer(self):
        """--tokenizer train: a byte-level BPE on the training rows, measured on the held-out rows against GPT-2's."""
        from core.corpus import load_corpus
        from core.lm.bpe import comparison_tokenizers, measure, train_bpe

        cfg = self.config
        t = time.perf_counter()
        corpus = load_corpus(cfg.data, cfg.rows, cfg.eval_rows)
        self.phases["data"] = time.perf_counter() - t
        tok = train_bpe(corpus.train, cfg.tokenizer_vocab, length=len(corpus.train))
        held = corpus.held_out or corpus.train[-100:]
        figures = measure({"llmlab BPE (this run)": tok, **comparison_tokenizers([], self.notes)}, held)
        return corpus, {"tokenizer": tok, "compression": figures}

    def share(self):
        """A trained tokenizer goes to the other ranks as rank 0 made it (the token cache it wrote does the rest)."""
        return (self.tok, self.tok_source, self.trained) if self.trained is not None else None

    def adopt(self, shared) -> None:
        self.shared_tokenizer = shared
        self.prepare()

    def config_record(self) -> dict:
        record = self.config.to_dict()
        record.pop("kind")
        return record

    def start_fields(self) -> dict:
        return {"epochs": self.config.epochs}

    def run(self, ctx: RunContext) -> dict:
        tokens, cache_hit = self.tokens, self.cache_state == "hit"
        ctx.emit(Phase(name="data", seconds=round(self.phases["data"], 3)))
        ctx.emit(Phase(name="tokenize", seconds=round(self.phases["tokenize"], 3), cache_hit=cache_hit))
        for note in self.notes:
            ctx.log(note)
        ctx.say(f"data: {tokens.source}; {tokens.n_train_rows} training rows, {len(tokens.train_ids):,} tokens"
                     + (" (token cache hit)" if cache_hit else ""))
        if self.trained is not None and ctx.main:
            from core.lm.bpe import save_tokenizer

            save_tokenizer(self.tok, ctx.run_dir / "tokenizer")  # `--tokenizer RUN_DIR` takes it from here
            ours = self.trained["compression"]["llmlab BPE (this run)"]
            line = (f"tokenizer: trained a {len(self.tok):,}-token byte-level BPE in {self.phases['tokenizer_train']:.1f} s; "
                    f"{ours['tokens_per_char']} tokens per character on held-out rows" +
                    "".join(f", {name} {c['tokens_per_char']}" for name, c in self.trained["compression"].items()
                            if name != "llmlab BPE (this run)"))
            ctx.announce(line)
        fields = {"demo": self.config.demo, "tokenizer": self.tok_source, **self._train(ctx)}
        if self.trained is not None:
            fields["tokenizer_compression"] = self.trained["compression"]
        return fields

    def _train(self, ctx: RunContext) -> dict:
        from core.pretrain.data import RESIDENT_MAX_TOKENS, MappedBlocks, count_blocks, pack_blocks
        from core.pretrain.model import build_model as build_gpt2
        from core.pretrain.train import count_steps_per_epoch, train
        from core.train.fsdp import full_state_dict
        from core.train.loop import planned_steps

        cfg, tok, tokens, phases = self.config, self.tok, self.tokens, self.phases
        t = time.perf_counter()
        pad_id = tok.eos_token_id
        if len(tokens.train_ids) <= RESIDENT_MAX_TOKENS:
            train_blocks = pack_blocks(tokens.train_ids, cfg.block_size, pad_id)
        else:  # larger than memory may hold: read from the memory-mapped token shards a batch at a time
            train_blocks = MappedBlocks(tokens.train_ids, cfg.block_size, pad_id)
        eval_blocks = pack_blocks(tokens.eval_ids, cfg.block_size, pad_id)
        model = (self.build_model or build_gpt2)(cfg, vocab_size=len(tok), eos_token_id=tok.eos_token_id)
        n_params = sum(p.numel() for p in model.parameters())
        phases["model_init"] = time.perf_counter() - t
        ctx.emit(Phase(name="model_init", seconds=round(phases["model_init"], 3)))
        n_blocks = count_blocks(train_blocks)
        steps_per_epoch = count_steps_per_epoch(n_blocks, cfg.batch_size)
        total_steps = planned_steps(n_blocks, cfg.batch_size, cfg.epochs, cfg.max_steps)
        ctx.emit(Plan(total_steps=total_steps, steps_per_epoch=steps_per_epoch,
                      blocks=n_blocks, tokens_per_epoch=len(tokens.train_ids), n_params=n_params))
        ctx.say(f"model: GPT-2 {cfg.model_size}, {n_params / 1e6:.1f} M parameters; "
                f"{total_steps} steps of {cfg.batch_size}×{cfg.block_size} tokens"
                + (f" (--max-steps {cfg.max_steps})" if total_steps < steps_per_epoch * cfg.epochs else ""))
        fsdp = cfg.fsdp and world().distributed

        self.samples: list[dict] = []

        def sampler(step: int) -> None:
            from core.pretrain.samples import draw_samples, why_degenerate

            for sample in draw_samples(model, tok, self.prompts, cfg.sample_tokens, step, cfg.seed, lockstep=fsdp):
                ctx.emit(Sample(**sample))
                self.samples.append(sample)
                if sample["degenerate"]:  # an event for the app and a line at the terminal
                    warning = (f"degenerate sample at step {step} ({sample['mode']}, {why_degenerate(sample)}): "
                               f"{sample['prompt']}{sample['text'][:40]}")
                    ctx.announce(warning)

        result = train(model, train_blocks, eval_blocks, cfg, ctx.emit, should_stop=ctx.should_stop,
                       on_step=self.on_step or ctx.on_step, run_dir=ctx.run_dir, resume_from=self.resume_from,
                       sampler=sampler if cfg.sample_tokens and (ctx.main or fsdp) else None)  # FSDP: every rank generates
        if result.compile_seconds is not None:
            phases["compile"] = result.compile_seconds
        phases["train"] = result.train_seconds
        ctx.emit(Phase(name="train", seconds=round(result.train_seconds, 3)))
        ctx.optimizations = result.optimizations[:1] + \
            ([CACHE_OPTIMIZATION[self.cache_state]] if self.cache_state in CACHE_OPTIMIZATION else []) + result.optimizations[1:]

        t = time.perf_counter()
        # Every rank holds the same weights, or (FSDP) its shard of them, gathered here on rank 0; rank 0 saves them.
        full = full_state_dict(model) if fsdp else None
        if not ctx.main:
            return {"steps": result.steps, **({"error": result.error} if result.error else {})}
        model.save_pretrained(ctx.run_dir / "model", **({"state_dict": full} if fsdp else {}))  # safetensors
        tok.save_pretrained(ctx.run_dir / "model")
        phases["save"] = time.perf_counter() - t
        ctx.emit(Phase(name="save", seconds=round(phases["save"], 3)))

        hw = snapshot()
        # Only the tokens this process trained on: after a resume, train_seconds covers just this process too.
        tps = result.tokens_trained / result.train_seconds if result.train_seconds > 0 else None
        peak = peak_bf16_flops(hw["gpus"][0]["name"]) if hw["gpus"] and result.device.startswith("cuda") else None
        # 6·N FLOPs per token for forward+backward through the weights, plus the attention scores.
        flops_per_token = 6 * n_params + 12 * model.config.n_layer * model.config.n_embd * cfg.block_size
        return {
            "train_seconds": round(result.train_seconds, 3), "epochs": cfg.epochs, "epochs_completed": result.epochs_done,
            "rows": tokens.n_train_rows, "eval_rows": tokens.n_eval_rows, "held_out": tokens.held_out_note,
            "tokens_per_epoch": int(len(tokens.train_ids)), "steps": result.steps, "tokens_trained": result.tokens_trained,
            "final_loss": result.final_loss, "eval_loss": _eval_loss(result),
            "eval_losses": result.eval_losses, "n_params": n_params, "stopped_early": result.stopped_early,
            "eval_history": [{"step": s, "epoch": e, "eval_loss": round(v, 5)} for s, e, v in result.evals],
            "samples": self.samples, "degenerate_samples": sum(s["degenerate"] for s in self.samples),
            "data_source": tokens.source, "token_cache_hit": self.cache_state == "hit", "token_cache": self.cache_state,
            "model_size": cfg.model_size, "optimizer": cfg.optimizer_used,
            "batch_size": cfg.batch_size, "block_size": cfg.block_size, "device": result.device,
            "tokens_per_second": round(tps, 1) if tps else None,
            "mfu": round(flops_per_token * tps / (peak * world().size), 4) if (peak and tps) else None,
            "peak_memory_mib": result.peak_memory_mib, "hardware": hw, "optimizations": ctx.optimizations,
            "compile_seconds": None if result.compile_seconds is None else round(result.compile_seconds, 3),
            "model_dir": str(ctx.run_dir / "model"), "nonfinite_steps": result.nonfinite_steps,
            "micro_batch_size": result.micro_batch_size, "oom_retries": result.oom_retries,
            "checkpoint": result.checkpoint, "resumed_from": str(self.resume_from) if self.resume_from else None,
            "fsdp": fsdp, "rank_memory": result.rank_memory, "max_steps": cfg.max_steps or None,
            "max_steps_reached": result.max_steps_reached,
            **({"error": result.error} if result.error else {}),
        }

    def finish(self, ctx: RunContext, summary: dict) -> None:
        """loss.png, timed as the report phase."""
        from core.train.chart import plot_losses

        summary.setdefault("demo", self.config.demo)
        summary.setdefault("tokenizer", getattr(self, "tok_source", None))
        t = time.perf_counter()
        try:
            plot_losses(ctx.run_dir, f"GPT-2 pretraining — {ctx.run_dir.name}")
        except Exception as exc:  # a chart must never hide the run's real outcome
            ctx.log(f"could not draw loss.png: {exc}")
        self.phases["report"] = time.perf_counter() - t
        summary["phases"] = {k: round(v, 3) for k, v in self.phases.items()}

    def report(self, run_dir: Path, summary: dict) -> str:
        from core.pretrain.report import render_report

        return render_report(run_dir, summary)

    def closing_line(self, summary: dict, run_dir: Path) -> str:
        line = f"{summary['status']} in {summary['total_seconds']:.1f} s; report: {run_dir / REPORT}"
        if summary["status"] != "completed" or summary.get("final_loss") is None:
            return line
        eval_loss = "-" if summary.get("eval_loss") is None else format(summary["eval_loss"], ".4f")
        return (f"final loss {summary['final_loss']:.4f}; eval loss {eval_loss}; total {summary['total_seconds']:.1f} s "
                f"(train {summary['train_seconds']:.1f} s)\n{line}")


def run_pretrain(cfg: PretrainConfig, on_step: Callable[[int, int], None] | None = None,
                 log: Callable[[str], None] = print, resume_from: Path | None = None,
                 stop: StopRequest | None = None, build_model: Callable | None = None) -> dict:
    """Run, write every file of the run directory, and return the summary.

    With `resume_from` (a checkpoint of the run in cfg.out) the run continues in its own
    directory and appends to its events.jsonl. `build_model(cfg, vocab_size, eos_token_id)`
    replaces llmlab's GPT-2 builder (the benches use it to try other attention kernels). `stop`
    is the StopRequest to honour (tests set its signal to stop at a given step).
    """
    job = PretrainJob(cfg, resume_from=resume_from, on_step=on_step, build_model=build_model)
    return run_job(job, log=log, stop=stop)
