"""One LoRA fine-tuning run on the shared lifecycle: splits, the base model's test answers, training, the tuned answers.

Files besides the run contract: data/{train,val,test}.jsonl (every example, with its question_id,
options after shuffling, gold, prompt and target), adapter/ (the best adapter by val loss, loadable
with PeftModel.from_pretrained), results_before.jsonl and results.jsonl (the test questions answered
by the base model and by base + adapter through the eval engine), loss.png.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
from pathlib import Path

from core.errors import UsageError
from core.finetune import data as fdata
from core.finetune.config import FinetuneConfig
from core.finetune.templates import template_for
from core.lifecycle import Job, RunContext, run_job
from core.qa.sheet import AnswerSheet
from core.runlog import Lora, Plan
from core.runs import REPORT, RESULTS, SUMMARY, iter_jsonl, read_json

ADAPTER = "adapter"
RESULTS_BEFORE = "results_before.jsonl"


def resume_config(run_dir: str | Path) -> tuple[FinetuneConfig, Path]:
    """The config of a fine-tuning run to resume and its newest complete checkpoint."""
    from core.checkpoints import resume_checkpoint
    from core.options import config_from_record
    from core.runlog.reader import load_run_config

    path, config = load_run_config(run_dir, "finetune")
    return config_from_record(FinetuneConfig, config, str(path)), resume_checkpoint(path)


class FinetuneJob(Job):
    kind = "finetune"
    stop_message = "finishing the current step, then saving a checkpoint (llmlab finetune --resume continues)"

    def __init__(self, config: FinetuneConfig, resume_from: Path | None = None, resume: bool = False) -> None:
        """`resume`: config.out is a stopped run to continue from its newest checkpoint (or from `resume_from`)."""
        super().__init__(config, resume=resume or resume_from is not None)
        self.resume_from = resume_from
        self.before: list[dict] = []
        self.after: list[dict] = []
        self.fields: dict = {}

    # ------------------------------------------------------------------ inputs

    def prepare(self) -> None:
        from core.lm.choice import choose_model

        cfg = self.config
        cfg.validate()
        if self.resume and self.resume_from is None and cfg.ensemble == 1:  # an ensemble resumes member by member
            from core.checkpoints import resume_checkpoint

            self.resume_from = resume_checkpoint(Path(cfg.out))
        questions, self.source = fdata.load_questions(cfg.data)
        if cfg.split_by == "subject":
            self.splits = fdata.split_by_subject(questions, cfg.val_fraction, cfg.test_fraction, cfg.seed)
        else:
            self.splits = fdata.split_per_subject(questions, cfg.val_per_subject, cfg.test_per_subject, cfg.seed)
        if not self.splits.train:
            raise UsageError(f"no training questions left after the splits ({self.splits.sizes()}); "
                             f"lower --val-per-subject / --test-per-subject or add data")
        from core.finetune.ensemble import check_ensemble

        check_ensemble(cfg, self.splits.train)
        if self.resume and cfg.ensemble > 1 and (read_json(Path(cfg.out) / SUMMARY) or {}).get("status") == "completed":
            raise UsageError(f"{cfg.out} already completed, so there is nothing left to resume; start a new run")
        self.choice = choose_model(cfg.model, demo=cfg.demo, quantize=cfg.quantize)
        self.model_path, self.tokenizer = self.choice.path, self.choice.tokenizer
        from core.finetune.lora import check_targets

        check_targets(self.model_path, cfg.targets)  # a typo in --targets costs nothing: checked before any test pass
        template = template_for(cfg.template, questions)
        self.template = template
        if template.chat:
            from core.lm.chat import check_chat_template

            check_chat_template(self.tokenizer, str(self.model_path), "--template chat")
        if template.kind == "math" and cfg.shuffle_copies > 1:
            raise UsageError("--shuffle-copies shuffles the options of A-D exams; math questions have none: drop it")
        rng = random.Random(cfg.seed)
        train_q = [copy for q in self.splits.train for copy in fdata.shuffle_copies(q, cfg.shuffle_copies, rng)]
        self.rows = {"train": self._example_rows(train_q), "val": self._example_rows(self.splits.val),
                     "test": self._example_rows(self.splits.test)}
        if self.resume:
            self._check_same_splits(Path(cfg.out))
        from core.finetune.examples import encoded_examples

        self.retain = None
        if cfg.retain_check:
            from core.scoring.squad import load_squad

            try:
                self.retain = load_squad(cfg.retain_check)[: cfg.retain_limit]
            except ValueError as exc:
                raise UsageError(f"--retain-check: {exc}") from None
        # tokenized once into the cache (memory-mapped token shards) and read an example at a time
        self.notes: list[str] = []
        self.train_examples, cut_train = encoded_examples(self.tokenizer, self.rows["train"], cfg.max_length, cfg.num_proc,
                                                          self.notes, chat=template.chat)
        self.val_examples, cut_val = encoded_examples(self.tokenizer, self.rows["val"], cfg.max_length, cfg.num_proc,
                                                      self.notes, chat=template.chat)
        self.cut = cut_train + cut_val

    def _example_rows(self, questions: list) -> list[dict]:
        """data/<split>.jsonl rows: `prompt` is what the model sees (the rendered user turn with --template chat,
        whose task prompt is kept as `user`)."""
        from core.lm.chat import user_turn

        rows = []
        for q in questions:
            text = self.template.prompt(q)
            row = fdata.example_row(q, text, self.template.target(q))
            if self.template.chat:
                row.update(prompt=user_turn(self.tokenizer, text), user=text)
            rows.append(row)
        return rows

    def _check_same_splits(self, run_dir: Path) -> None:
        for name, rows in self.rows.items():
            saved = [(r["question_id"], r["gold"], r["target"]) for r in iter_jsonl(run_dir / "data" / f"{name}.jsonl")]
            if saved != [(r["question_id"], r["gold"], r["target"]) for r in rows]:
                raise UsageError(f"cannot resume {run_dir}: the {name} split made from {self.config.data} is not the one "
                                 f"the run trained on (the data changed); start a new run")

    def config_record(self) -> dict:
        return {**self.config.to_dict(), "model_path": str(self.model_path), "data_source": self.source}

    def start_fields(self) -> dict:
        return {"epochs": self.config.epochs, "demo": self.config.demo}

    # ------------------------------------------------------------------ the work

    def run(self, ctx: RunContext) -> dict:
        cfg, splits = self.config, self.splits
        for note in [*splits.notes, *self.notes]:
            ctx.log(note)
        if self.cut:
            ctx.log(f"{self.cut} examples are longer than --max-length {cfg.max_length}; their prompts lost their beginning")
        leaked, leaked_records = fdata.leaked_ids(splits), fdata.leaked_groups(splits)
        if leaked or leaked_records:  # cannot happen by construction; checked because the whole point is that it does not
            raise RuntimeError(f"{len(leaked)} question ids and {len(leaked_records)} records are in more than one split")
        if not self.resume and ctx.main:
            for name, rows in self.rows.items():
                fdata.write_split(ctx.run_dir / "data" / f"{name}.jsonl", rows)
        self.fields = {
            "model": "demo (tiny random Qwen2)" if cfg.demo else cfg.model, "data": self.source, "template": self.template.name,
            "split_by": cfg.split_by, "shuffle_copies": cfg.shuffle_copies, **splits.sizes(),
            "train_examples": len(self.rows["train"]),
            "subjects": len({q.subject for q in splits.train + splits.val + splits.test}),
            "leak_check": {"question_ids_in_more_than_one_split": len(leaked), "checked": True,
                           **({"records_in_more_than_one_split": len(leaked_records)}
                              if any(getattr(q, "group", "") for q in splits.train) else {})},
        }
        import torch

        from core.lm.loading import pick_device, resolve_dtype

        if cfg.threads or cfg.demo:
            torch.set_num_threads(cfg.threads or 1)
        device = pick_device()
        dtype, self.fields["dtype"] = resolve_dtype("auto" if cfg.bf16 else "fp32", device)
        self.dtype = dtype
        t = time.perf_counter()
        from core.lm.loading import load_model

        model, _ = load_model(self.model_path, dtype, device, self.tokenizer, quantize=cfg.quantize)
        self.fields["load_seconds"] = round(time.perf_counter() - t, 3)
        self.fields["quantization"] = self.choice.quantization
        self.fields["first_prompt"] = self.rows["test"][0]["prompt"] if self.rows["test"] else None

        self._answer_test(ctx, model, RESULTS_BEFORE, "before")
        self._retention(ctx, model, "before")
        from core.finetune.lora import add_lora, prepare_base

        model = prepare_base(model, self.choice.quantization != "none", cfg.checkpointing)
        if cfg.ensemble > 1:  # seed 002's recipe: K adapters, each over the same base, then their vote
            from core.finetune.ensemble import run_ensemble

            return run_ensemble(self, ctx, model, device)
        model, counts = add_lora(model, cfg.rank, cfg.alpha, cfg.dropout, cfg.targets, cfg.seed)
        self.fields.update(counts)
        ctx.emit(Lora(**counts))
        ctx.log(f"LoRA r={cfg.rank} alpha={cfg.alpha} on {counts['target_modules']}: {counts['trainable_params']:,} "
                f"trainable of {counts['total_params']:,} ({counts['trainable_ratio']:.5%})"
                + (f"; base quantized {self.choice.quantization}" if self.choice.quantization != "none" else ""))
        result, fields, model = self._train(ctx, model, device, cfg, self.train_examples, ctx.run_dir, self.resume_from)
        self.fields.update(fields)
        if result.error:  # the loss went non-finite too often: no tuned model worth testing
            return {"error": result.error}
        self._answer_test(ctx, model, RESULTS, "after")
        self._retention(ctx, model, "after")
        return {"status": "stopped" if result.stopped else "completed"}

    def _retention(self, ctx: RunContext, model, which: str) -> None:
        """--retain-check: the SQuAD scores of the base (before) or the tuned model (after), and their ratio."""
        if self.retain is None or ctx.should_stop() or not ctx.main:  # rank 0 judges; the others only train
            return
        from types import SimpleNamespace

        from core.qa.squad import PROMPT, answer_squad, retention

        was_training = model.training
        model.eval()
        with AnswerSheet(ctx, len(self.retain), f"results_squad_{which}.jsonl", phase=f"squad {which}") as sheet:
            scores = answer_squad(SimpleNamespace(model=model, tokenizer=self.tokenizer), self.retain, PROMPT, 32, "auto",
                                  on_row=sheet.add, should_stop=ctx.should_stop, log=ctx.log)
        model.train(was_training)
        self.fields[f"squad_{which}"] = {"exact_match": round(scores["exact_match"], 3), "f1": round(scores["f1"], 3),
                                         "n": scores["n"]}
        if which == "after" and "squad_before" in self.fields:
            kept = retention(self.fields["squad_before"], self.fields["squad_after"])
            self.fields["retention"] = {k: None if v is None else round(v, 4) for k, v in kept.items()}
            threshold = self.config.retain_threshold
            self.fields["retain_threshold"] = threshold
            self.fields["retention_ok"] = all(v is not None and v >= threshold for v in kept.values())
            if not self.fields["retention_ok"]:
                ctx.log(f"retention below {threshold:.0%} (or undefined: the base scored 0): EM "
                        f"{self.fields['retention']['exact_match']}, F1 {self.fields['retention']['f1']}")

    def _train(self, ctx: RunContext, model, device, cfg: FinetuneConfig, train_examples, where: Path,
               resume_from: Path | None):
        """Train the active adapter of `model` on `train_examples` (checkpoints and the best adapter in `where`);
        (the loop's result, the summary fields it gives, the tuned model to answer the test with: `model`, or with
        --fsdp a whole copy on rank 0)."""
        import contextlib

        import torch
        from peft import get_peft_model_state_dict, set_peft_model_state_dict

        from core.distributed import broadcast, world
        from core.finetune.train import train_adapter
        from core.train.fsdp import full_state_dict
        from core.train.loop import Hooks, planned_steps

        best: dict = {}
        fsdp = cfg.fsdp and world().distributed
        tasks = []

        def on_best() -> None:
            """Keep the best adapter in memory (for the after-test) and on disk (adapter/), atomically.

            With --fsdp the adapter is in shards: every rank takes part in gathering it on rank 0.
            """
            gathered = None
            if fsdp:  # the loss module's trainable state: "model." + the peft model's own names
                gathered = {k.removeprefix("model."): v for k, v in
                            full_state_dict(tasks[0].sharded_state.module, trainable_only=True).items()}
            if not ctx.main:
                return
            best.clear()
            if gathered is not None:
                best.update(get_peft_model_state_dict(model, state_dict=gathered))
            else:
                best.update({k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()})
            tmp = Path(tempfile.mkdtemp(prefix=".adapter-", dir=where))
            model.save_pretrained(tmp, **({"state_dict": gathered} if gathered is not None else {}))
            final = where / ADAPTER
            if final.exists():
                shutil.rmtree(final)
            tmp.replace(final)

        quantized = self.choice.quantization != "none"  # kbit preparation keeps the rest in fp32: autocast to bf16
        bf16 = device == "cuda" and (next(model.parameters()).dtype == torch.bfloat16 or
                                     quantized and cfg.bf16 and torch.cuda.is_bf16_supported())
        autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else contextlib.nullcontext
        steps_per_epoch = -(-len(train_examples) // cfg.batch_size)
        ctx.emit(Plan(total_steps=planned_steps(len(train_examples), cfg.batch_size, cfg.epochs, cfg.max_steps),
                      steps_per_epoch=steps_per_epoch,
                      examples=len(train_examples), n_params=self.fields["total_params"],
                      trainable_params=self.fields["trainable_params"]))
        hooks = Hooks(emit=ctx.emit, should_stop=ctx.should_stop, on_step=ctx.on_step, run_dir=where, on_best=on_best)
        result, fused = train_adapter(model, train_examples, self.val_examples, cfg,
                                      pad_id=self.tokenizer.pad_token_id, hooks=hooks, resume_from=resume_from,
                                      autocast=autocast, bf16=bf16, on_task=tasks.append)
        saved = where / ADAPTER / "adapter_model.safetensors"
        if not (broadcast(bool(best) or saved.is_file()) if fsdp else (best or saved.is_file() or not ctx.main)):
            on_best()  # no val split: the final adapter is the one kept (with --fsdp every rank gathers it)
        if not best and saved.is_file() and ctx.main:  # resumed after the best was saved
            from safetensors.torch import load_file

            best.update(load_file(str(saved)))
        if fsdp:  # the trained model is in shards: rank 0 answers the test with a whole copy, the base and the kept adapter
            model = self._whole_model(best, device) if ctx.main else None
        elif best:
            set_peft_model_state_dict(model, best)  # the after-test answers with the adapter that was kept
        ctx.optimizations = [o for o, on in (
            ("bf16 autocast, frozen base weights in bf16", bf16), ("fused AdamW over the adapter's parameters", fused),
            ("gradient checkpointing", cfg.checkpointing),
            (f"base quantized ({self.choice.quantization}), LoRA over it (peft's prepare_model_for_kbit_training)", quantized),
            (f"micro-batches of {result.micro_batch_size} after {result.oom_retries} out-of-memory retries", result.oom_retries),
        ) if on] + ["output layer applied to the target tokens only (no prompt logits)",
                    "before/after test answers through the eval engine (batched, finished rows dropped)"]
        by_epoch = {}
        for _, epoch, loss in result.evals:
            if float(epoch).is_integer():
                by_epoch[str(int(epoch))] = round(loss, 5)  # str keys: the same in memory as in summary.json
        return result, dict(
            steps=result.steps, epochs=cfg.epochs, epochs_completed=result.epochs_done,
            train_seconds=round(result.train_seconds, 3),
            train_loss=result.train_losses[-1][1] if result.train_losses else None, val_loss_by_epoch=by_epoch,
            val_losses=[{"step": s, "epoch": e, "val_loss": round(v, 5)} for s, e, v in result.evals],
            best_val_loss=None if result.best["loss"] is None else round(result.best["loss"], 5),
            best_epoch=result.best["epoch"], best_step=result.best["step"], stopped_early=result.stopped_early,
            tokens_trained=result.tokens_trained, nonfinite_steps=result.nonfinite_steps,
            tokens_per_second=round(result.tokens_trained / result.train_seconds, 1) if result.train_seconds else None,
            micro_batch_size=result.micro_batch_size, oom_retries=result.oom_retries, checkpoint=result.checkpoint,
            adapter_dir=str(where / ADAPTER), fsdp=fsdp, rank_memory=result.rank_memory,
            max_steps=cfg.max_steps or None, max_steps_reached=result.max_steps_reached,
            **({"error": result.error} if result.error else {}),
        ), model

    def _whole_model(self, adapter: dict, device):
        """The base model loaded again, whole, with the adapter that was kept: what rank 0 answers the test with after
        --fsdp training (the trained copy is in shards over the ranks)."""
        from peft import set_peft_model_state_dict

        from core.finetune.lora import add_lora
        from core.lm.loading import load_model

        cfg = self.config
        base, _ = load_model(self.model_path, self.dtype, device, self.tokenizer)
        model, _ = add_lora(base, cfg.rank, cfg.alpha, cfg.dropout, cfg.targets, cfg.seed)
        set_peft_model_state_dict(model, adapter)
        return model

    def _answer_test(self, ctx: RunContext, model, filename: str, which: str) -> list[dict]:
        """The test questions answered through the eval engine, each line written as its row ends (`which`: before,
        after, or an ensemble member's phase)."""
        from core.lm.batch_plan import auto_batch_size
        from core.lm.engine import generate_answers, prompt_lengths

        if not ctx.main:  # rank 0 answers the test; the others only train
            return []
        rows, path = self.rows["test"], ctx.run_dir / filename
        done = list(iter_jsonl(path)) if self.resume and which == "before" else []
        if len(done) == len(rows):  # a resumed run answered them already
            self.before = done
            return done
        if not rows:
            return []
        cfg = self.config
        prompts = [r["prompt"] for r in rows]
        t = time.perf_counter()
        batch = auto_batch_size(model, prompt_lengths(self.tokenizer, prompts), cfg.test_max_new_tokens)
        with AnswerSheet(ctx, len(rows), filename, phase=which) as sheet:
            def on_row(i, generation):
                r = rows[i]
                pred, correct = self.template.judge(generation.text, r["gold"])
                sheet.add({"qid": r["question_id"], "index": i, "question_id": r["question_id"], "subject": r["subject"],
                           "question": r["question"], "prompt": r["prompt"], "gold": r["gold"], "pred": pred,
                           "correct": correct, "output": generation.text, "new_tokens": generation.new_tokens,
                           **{k: r[k] for k in ("options", "group", "passage") if r.get(k)}})

            was_training = model.training
            model.eval()
            generate_answers(model, self.tokenizer, prompts, max_new_tokens=cfg.test_max_new_tokens, batch_size=batch,
                             on_row=on_row, should_stop=ctx.should_stop, log=ctx.log)
            model.train(was_training)
        answered = sheet.rows
        if which in ("before", "after"):
            setattr(self, which, answered)
            self.fields[f"test_seconds_{which}"] = round(time.perf_counter() - t, 3)
        return answered

    # ------------------------------------------------------------------ the files at the end

    def finish(self, ctx: RunContext, summary: dict) -> None:
        from core.train.chart import plot_losses

        summary.update(self.fields)
        for which in ("before", "after"):
            rows = getattr(self, which)
            summary[f"test_accuracy_{which}"] = sum(r["correct"] for r in rows) / len(rows) if rows else None
            summary[f"test_answered_{which}"] = len(rows)
        if getattr(self, "template", None) is not None and self.template.kind == "math" and \
                summary.get("test_accuracy_after") is not None and "trainable_ratio" in summary:
            from core.qa.math import contest_score  # seed 003 ranks tuned math models by this

            summary["score"] = round(contest_score(summary["trainable_ratio"], summary["test_accuracy_after"]), 6)
        summary.setdefault("demo", self.config.demo)
        try:
            plot_losses(ctx.run_dir, f"LoRA fine-tuning — {ctx.run_dir.name}", "train loss (target tokens)", "val loss")
        except Exception as exc:  # a chart must never hide the run's outcome
            ctx.log(f"could not draw loss.png: {exc}")

    def report(self, run_dir: Path, summary: dict) -> str:
        from core.finetune.report import render_report

        return render_report(run_dir, summary, self.before, self.after)

    def closing_line(self, summary: dict, run_dir: Path) -> str:
        before, after = summary.get("test_accuracy_before"), summary.get("test_accuracy_after")
        acc = "" if before is None or after is None else f"; test accuracy {before:.1%} -> {after:.1%}"
        return f"{summary['status']} in {summary['total_seconds']:.1f} s{acc}; report: {run_dir / REPORT}"


def run_finetune(cfg: FinetuneConfig, log=print, resume_from: Path | None = None, should_stop=None, progress=None) -> dict:
    """Run, write every file of the run folder, and return the summary."""
    return run_job(FinetuneJob(cfg, resume_from=resume_from), log=log, should_stop=should_stop, progress=progress)

