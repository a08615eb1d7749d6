"""Seed 002's recipe in one run (`llmlab finetune --ensemble K`): K adapters, then their vote.

Seed 002 trained 9-12 adapters with the same settings on different data and voted; its best score came
from 9 voting. Here the K adapters differ by seed (LoRA init and data order: --seed + k - 1) and by
their training data (--ensemble-data): `bootstrap` draws the training split's questions (a passage's
sub-questions together) with replacement, `disjoint` gives each its own share. Val and test are shared.

Each adapter trains on the shared loop over the one loaded base (peft's LoRA is added, trained, saved,
then unloaded), into members/member-<k>/ (its adapter/, its training rows, its checkpoints, a summary
once it finished). The test split is then answered with every adapter over that same base, switched
by name (core.lm.choice.LoadedModel.use_adapter), each into members/member-<k>/results.jsonl, and
their majority vote (core.qa.vote's rule) is the run's results.jsonl and its after-accuracy.

A stop or crash keeps the finished adapters; `--resume` skips them, continues the unfinished one from
its newest checkpoint, and trains the rest.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from core.errors import UsageError
from core.finetune import data as fdata
from core.runlog import Lora
from core.runs import CONFIG, RESULTS, SUMMARY, read_json, write_json

MEMBERS = "members"
ADAPTER = "adapter"


def member_dir(run_dir: Path, k: int) -> Path:
    return Path(run_dir) / MEMBERS / f"member-{k}"


def _units(questions: list) -> dict[str, list]:
    """The training questions by what a split keeps whole (a passage's sub-questions are one unit)."""
    units: dict[str, list] = {}
    for q in questions:
        units.setdefault(getattr(q, "unit", q.question_id), []).append(q)
    return units


def member_questions(train: list, k: int, size: int, mode: str, seed: int) -> list:
    """Member k's (1-based) training questions: a bootstrap resample of the units, or its disjoint share of them."""
    units = _units(train)
    keys = list(units)
    if mode == "disjoint":
        random.Random(seed).shuffle(keys)
        chosen = keys[k - 1::size]
    else:
        rng = random.Random(f"{seed}/bootstrap/{k}")
        chosen = [rng.choice(keys) for _ in keys]
    return [q for key in chosen for q in units[key]]


def check_ensemble(cfg, train: list) -> None:
    """Refuse, before a folder exists, an ensemble its data cannot give."""
    if cfg.ensemble > 1 and cfg.ensemble_data == "disjoint" and len(_units(train)) < cfg.ensemble:
        raise UsageError(f"--ensemble {cfg.ensemble} --ensemble-data disjoint needs at least {cfg.ensemble} training "
                         f"questions (or passages); the split has {len(_units(train))}: use bootstrap or fewer adapters")


def _accuracy(rows: list[dict]) -> float | None:
    return sum(bool(r["correct"]) for r in rows) / len(rows) if rows else None


def run_ensemble(job, ctx, model, device) -> dict:
    """Train every member the run still lacks, answer the test with each over the one base, vote; the run's fields."""
    from core.checkpoints import list_checkpoints
    from core.finetune.lora import add_lora
    from core.finetune.train import encode

    cfg, size = job.config, job.config.ensemble
    members: list[dict] = []
    for k in range(1, size + 1):
        where = member_dir(ctx.run_dir, k)
        kept = read_json(where / SUMMARY) or {}
        if kept.get("status") == "completed" and (where / ADAPTER / "adapter_model.safetensors").is_file():
            members.append(kept)
            ctx.log(f"ensemble member {k} of {size}: finished before, kept")
            continue
        if ctx.should_stop():
            break
        member_cfg = replace(cfg, seed=cfg.seed + k - 1)
        questions = member_questions(job.splits.train, k, size, cfg.ensemble_data, cfg.seed)
        rng = random.Random(member_cfg.seed)
        rows = job._example_rows([c for q in questions for c in fdata.shuffle_copies(q, cfg.shuffle_copies, rng)])
        examples, _ = encode(job.tokenizer, rows, cfg.max_length, job.template.chat)
        where.mkdir(parents=True, exist_ok=True)
        if ctx.main:  # a config.json of its own: `llmlab vote`, `eval --adapter` and `generate --run` take a member folder
            write_json(where / CONFIG, {"kind": "finetune", "member": k, "ensemble_of": str(ctx.run_dir),
                                        "seed": member_cfg.seed, "model_path": str(job.model_path),
                                        "ensemble_data": cfg.ensemble_data, "template": job.template.name})
            fdata.write_split(where / "data" / "train.jsonl", rows)
        ctx.log(f"ensemble member {k} of {size}: seed {member_cfg.seed}, {len(questions)} training questions "
                f"({cfg.ensemble_data}), {len(rows)} examples")
        peft_model, counts = add_lora(model, cfg.rank, cfg.alpha, cfg.dropout, cfg.targets, member_cfg.seed)
        if "trainable_params" not in job.fields:
            job.fields.update(counts)
            ctx.emit(Lora(**counts))
        checkpoints = list_checkpoints(where) if job.resume else []
        result, fields, _ = job._train(ctx, peft_model, device, member_cfg, examples, where,
                                       checkpoints[-1] if checkpoints else None)
        model = peft_model.unload()  # the base again, without this member's LoRA layers
        summary = {"kind": "finetune", "member": k, "seed": member_cfg.seed, "train_questions": len(questions),
                   "train_examples": len(rows), "status": "failed" if result.error else
                   "stopped" if result.stopped else "completed",
                   **{key: fields.get(key) for key in ("steps", "train_loss", "best_val_loss", "best_epoch", "train_seconds",
                                                       "adapter_dir", "error")}}
        if ctx.main:
            write_json(where / SUMMARY, summary)
        if result.error:
            return {"error": f"ensemble member {k}: {result.error}", "ensemble": _fields(cfg, members + [summary])}
        if result.stopped:
            break
        members.append(summary)
    job.fields["ensemble"] = _fields(cfg, members)
    if len(members) < size:
        ctx.log(f"stopped with {len(members)} of {size} adapters finished; they are kept, and "
                f"'llmlab finetune --resume {ctx.run_dir}' trains the rest")
        return {"status": "stopped"}
    return _answer_and_vote(job, ctx, model, device, members)


def _answer_and_vote(job, ctx, model, device, members: list[dict]) -> dict:
    """Every member's test answers over the one base (adapters switched by name), then their vote as results.jsonl."""
    from core.lm.adapters import adapter_name, load_adapter
    from core.lm.choice import LoadedModel
    from core.qa.sheet import AnswerSheet
    from core.qa.vote import voted_rows

    for i, member in enumerate(members):
        model = load_adapter(model, member_dir(ctx.run_dir, member["member"]) / ADAPTER, adapter_name=adapter_name(i))
    loaded = LoadedModel(model, job.tokenizer, job.fields.get("dtype", ""), device, 0.0, job.choice.quantization)
    answers = []
    for i, member in enumerate(members):
        loaded.use_adapter(i)
        rows = job._answer_test(ctx, loaded.model, f"{MEMBERS}/member-{member['member']}/{RESULTS}",
                                f"adapter {member['member']}")
        member["test_accuracy"] = _accuracy(rows)
        answers.append(rows)
        if ctx.should_stop():
            return {"status": "stopped"}
    if not ctx.main:
        return {"status": "completed"}
    voted, ties = voted_rows([{r["qid"]: r for r in rows} for rows in answers], [m["test_accuracy"] for m in members])
    with AnswerSheet(ctx, len(voted), RESULTS, phase="vote") as sheet:
        for row in voted:
            sheet.add(row)
    job.after = sheet.rows
    job.fields["ensemble"] = {**_fields(job.config, members), "vote_accuracy": _accuracy(sheet.rows), "ties": ties}
    best = max((m["test_accuracy"] or 0 for m in members), default=0)
    ctx.log(f"vote of {len(members)} adapters: accuracy {_accuracy(sheet.rows):.1%} (best single adapter {best:.1%})")
    return {"status": "completed"}


def _fields(cfg, members: list[dict]) -> dict:
    return {"size": cfg.ensemble, "data": cfg.ensemble_data, "finished": len([m for m in members
                                                                             if m.get("status") == "completed"]),
            "members": members}
