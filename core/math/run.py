"""One math-accuracy run on the shared lifecycle: replies generated (or read) and judged by their last number.

results.jsonl: `id`, `question`, `reply`, `pred` (the reply's last number), `gold` (the solution's),
`correct` (equal within a relative tolerance). With an adapter the summary adds `trainable_ratio` and
seed 003's `score = (1 - trainable_ratio) * 0.3 + accuracy * 0.7`.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.errors import UsageError
from core.lifecycle import RunContext, run_job
from core.math.config import MathConfig
from core.qa.math import MathQuestion, contest_score, judge, load_math
from core.qa.sheet import AnswerSheet, QuestionJob, accuracy_text, qa_report, qa_summary
from core.textfile import read_text


def _load_replies(path: str, questions: list[MathQuestion]) -> dict[str, str]:
    text = read_text(path, "--predictions file", "give a JSON object {id: reply}")
    try:
        replies = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"cannot read --predictions {path} ({exc}); give a JSON object {{id: reply}}") from None
    if not isinstance(replies, dict) or not all(isinstance(v, str) for v in replies.values()):
        raise UsageError(f"--predictions {path} must be a JSON object of id -> reply text")
    ids = [q.question_id for q in questions]
    if not set(ids) & set(replies):
        raise UsageError(f"{path} answers other questions: none of its {len(replies)} ids is among the {len(ids)} of the data")
    missing = [i for i in ids if i not in replies]
    if missing:
        raise UsageError(f"{path} lacks replies for {len(missing)} of {len(ids)} questions: "
                         + ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else ""))
    return replies


class MathJob(QuestionJob):
    kind = "math"

    def prepare(self) -> None:
        cfg = self.config
        cfg.validate()
        self.questions = load_math(cfg.data)[: cfg.limit]
        self.total = len(self.questions)
        self.replies = _load_replies(cfg.predictions, self.questions) if cfg.predictions else None
        self.choice, self.ratio = None, None
        if self.replies is None:
            from core.lm.adapters import adapter_ratio
            from core.lm.choice import DEFAULT_MODEL, choose_model

            self.choice = choose_model(cfg.model or DEFAULT_MODEL, cfg.adapter, cfg.demo, quantize=cfg.quantize,
                                       chat=cfg.chat)
            if self.choice.adapters:
                self.ratio = adapter_ratio(self.choice.path, self.choice.adapters[0])

    def run(self, ctx: RunContext) -> dict:
        cfg = self.config
        with AnswerSheet(ctx, self.total) as sheet:
            if self.replies is not None:
                for q in self.questions:
                    sheet.add(judge(q, self.replies[q.question_id], cfg.tolerance))
                fields = {"mode": "predictions", "predictions": cfg.predictions}
            else:
                for note in self.choice.notes:
                    ctx.log(note)
                fields = self._generate(ctx, sheet.add)
        fields.update(qa_summary(sheet.rows, self.total))
        if self.ratio is not None and fields["accuracy"] is not None:
            fields.update(self.ratio, score=round(contest_score(self.ratio["trainable_ratio"], fields["accuracy"]), 6))
        return fields

    def _generate(self, ctx: RunContext, keep) -> dict:
        from core.lm.batch_plan import auto_batch_size
        from core.lm.choice import load_for_generation
        from core.lm.engine import prompt_lengths
        from core.lm.shard import generate_sharded

        cfg = self.config
        loaded = load_for_generation(self.choice, cfg.dtype, cfg.threads or (1 if cfg.demo else None))
        prompts = self.choice.render([cfg.prompt.format(problem=q.question) for q in self.questions])
        batch = cfg.batch_size if cfg.batch_size != "auto" else auto_batch_size(
            loaded.model, prompt_lengths(loaded.tokenizer, prompts), cfg.max_new_tokens)
        import time

        start = time.perf_counter()
        stop_when = (lambda text: "\n" in text.strip()) if cfg.stop_at_newline else None
        generate_sharded(loaded.model, loaded.tokenizer, prompts, max_new_tokens=cfg.max_new_tokens, batch_size=batch,
                         stop_when=stop_when, greedy=True, should_stop=ctx.should_stop, log=ctx.log,
                         on_row=lambda i, g: keep(judge(self.questions[i], _reply(g.text, cfg.stop_at_newline), cfg.tolerance)))
        return {"mode": "generate", "model": self.choice.label, "adapter": [str(a) for a in self.choice.adapters] or None,
                "load_seconds": round(loaded.seconds, 3), "generate_seconds": round(time.perf_counter() - start, 3),
                "dtype": loaded.dtype, "device": loaded.device, "batch_size": batch, "quantization": loaded.quantization,
                "chat": cfg.chat, "first_prompt": prompts[0] if prompts else None}

    def report(self, run_dir: Path, summary: dict) -> str:
        s, figures = summary, []
        if s.get("accuracy") is not None:
            figures = [("Accuracy", accuracy_text(s)), ("Data", s.get("data")),
                       ("Replies", s.get("predictions") or s.get("model"))]
            if "score" in s:
                figures += [("Trainable ratio",
                             f"{s['trainable_ratio']:.6f} ({s['trainable_params']:,} of {s['total_params']:,})"),
                            ("Score (1 − ratio) × 0.3 + accuracy × 0.7", f"**{s['score']:.4f}**")]
        notes = ["A reply's answer is its last number (sign, thousands separators, decimals, exponent or a/b; a "
                 "trailing % ignored), equal to the solution's last number within the relative tolerance."]
        return "\n".join(qa_report(f"Math accuracy — {run_dir.name}", s, figures, notes))

    def figures_line(self, summary: dict) -> str | None:
        if summary.get("accuracy") is None:
            return None
        score = f"; score {summary['score']:.4f}" if "score" in summary else ""
        return f"accuracy {summary['accuracy']:.1%} ({summary['correct']}/{summary['n']}){score}"


def _reply(text: str, first_line_only: bool) -> str:
    return text.strip().split("\n", 1)[0] if first_line_only else text


def run_math(cfg: MathConfig, log=print, progress=None, should_stop=None) -> dict:
    return run_job(MathJob(cfg), log=log, progress=progress, should_stop=should_stop)
