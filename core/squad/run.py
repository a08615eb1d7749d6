"""One SQuAD run on the shared lifecycle: answers generated (or read from a predictions file) and scored.

results.jsonl: one line per question (`id`, `prediction`, `golds`, `em`, `f1`, the full `output`).
With --baseline the base model's answers go to results_before.jsonl and the summary adds
`squad_before`, `squad_after` and `retention`.
"""

from __future__ import annotations

from pathlib import Path

from core.errors import UsageError
from core.lifecycle import RunContext, run_job
from core.qa.sheet import AnswerSheet, QuestionJob, qa_report, qa_summary
from core.runs import RESULTS
from core.squad.config import SquadConfig

RESULTS_BEFORE = "results_before.jsonl"


def _scores(result: dict) -> dict:
    return {"exact_match": round(result["exact_match"], 3), "f1": round(result["f1"], 3), "n": result["n"]}


class SquadJob(QuestionJob):
    kind = "squad"

    def prepare(self) -> None:
        from core.scoring.squad import load_predictions, load_squad

        cfg = self.config
        cfg.validate()
        try:
            self.examples = load_squad(cfg.data)[: cfg.limit]
            self.predictions = load_predictions(cfg.predictions) if cfg.predictions else None
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        self.total = len(self.examples)
        if self.predictions is not None:
            ids = {e["id"] for e in self.examples}
            if not ids & set(self.predictions):
                raise UsageError(f"{cfg.predictions} answers other questions: none of its {len(self.predictions)} ids is "
                                 f"among the {len(ids)} of {cfg.data}")
            missing = [e["id"] for e in self.examples if e["id"] not in self.predictions]
            if missing:
                shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
                raise UsageError(f"{cfg.predictions} lacks answers for {len(missing)} of {len(ids)} questions: {shown}")
            self.choice = None
        else:
            from core.lm.choice import DEFAULT_MODEL, choose_model

            self.choice = choose_model(cfg.model or DEFAULT_MODEL, cfg.adapter, cfg.demo, quantize=cfg.quantize,
                                       chat=cfg.chat)

    def run(self, ctx: RunContext) -> dict:
        from core.scoring.squad import score_predictions

        cfg = self.config
        if self.predictions is not None:
            result = score_predictions(self.examples, self.predictions)
            with AnswerSheet(ctx, self.total) as sheet:
                for row in result["rows"]:
                    sheet.add({"qid": str(row["id"]), **row})
            return {"mode": "predictions", "predictions": cfg.predictions, **_scores(result),
                    **qa_summary(sheet.rows, self.total, judged=False)}
        from core.lm.choice import load_for_generation
        from core.qa.squad import retention

        for note in self.choice.notes:
            ctx.log(note)
        loaded = load_for_generation(self.choice, cfg.dtype, cfg.threads or (1 if cfg.demo else None))
        fields = {"mode": "generate", "model": self.choice.label, "adapter": [str(a) for a in self.choice.adapters] or None,
                  "load_seconds": round(loaded.seconds, 3), "dtype": loaded.dtype, "device": loaded.device,
                  "quantization": loaded.quantization, "chat": cfg.chat}
        if cfg.baseline:
            loaded.use_adapter(None)
            before, _ = self._answer(ctx, loaded, RESULTS_BEFORE, "before")
            loaded.use_adapter(0)
            fields["squad_before"] = _scores(before)
        after, rows = self._answer(ctx, loaded, RESULTS, "after" if cfg.baseline else "answers")
        fields.update(_scores(after), generate_seconds=round(after["seconds"], 3), first_prompt=after.get("first_prompt"))
        if cfg.baseline:
            fields["squad_after"] = _scores(after)
            fields["retention"] = {k: (None if v is None else round(v, 4))
                                   for k, v in retention(fields["squad_before"], fields["squad_after"]).items()}
            fields["retain_threshold"] = cfg.retain_threshold
            fields["retention_ok"] = all(v is not None and v >= cfg.retain_threshold for v in fields["retention"].values())
            if not fields["retention_ok"]:
                ctx.log(f"retention below {cfg.retain_threshold:.0%}: EM {fields['retention']['exact_match']}, "
                        f"F1 {fields['retention']['f1']} (after / before)")
        return {**fields, **qa_summary(rows, self.total, judged=False)}

    def _answer(self, ctx: RunContext, loaded, filename: str, phase: str) -> tuple[dict, list[dict]]:
        from core.qa.squad import answer_squad

        cfg = self.config
        with AnswerSheet(ctx, self.total, filename, phase) as sheet:
            scores = answer_squad(loaded, self.examples, cfg.prompt, cfg.max_new_tokens, cfg.batch_size, on_row=sheet.add,
                                  should_stop=ctx.should_stop, log=ctx.log, chat=cfg.chat)
        return scores, sheet.rows

    def report(self, run_dir: Path, summary: dict) -> str:
        s, figures = summary, []
        if "exact_match" in s:
            figures = [("Exact match", f"**{s['exact_match']:.2f}**"), ("F1", f"**{s['f1']:.2f}**"),
                       ("Questions", f"{s['n']} of {s['total']}"), ("Data", s.get("data")),
                       ("Answers", s.get("predictions") or s.get("model"))]
            if s.get("retention"):
                b, r = s["squad_before"], s["retention"]
                flag = "" if s["retention_ok"] else f" **below {s['retain_threshold']:.0%}**"
                figures += [("Base model alone", f"EM {b['exact_match']:.2f}, F1 {b['f1']:.2f}"),
                            ("Retention (after / before)", f"EM {r['exact_match']}, F1 {r['f1']}{flag}")]
        notes = ["Scored as the official v1.1 script does: lower-case, ASCII punctuation and the articles a/an/the removed, "
                 "whitespace collapsed; EM and token F1 are each the best over the gold answers."]
        return "\n".join(qa_report(f"SQuAD v1.1 — {run_dir.name}", s, figures, notes))

    def end_fields(self, summary: dict) -> dict:
        return {key: summary.get(key) for key in ("exact_match", "f1")}

    def figures_line(self, summary: dict) -> str | None:
        if "exact_match" not in summary:
            return None
        text = f"exact_match {summary['exact_match']:.2f}, f1 {summary['f1']:.2f} ({summary['n']} questions)"
        if summary.get("retention"):
            text += f"; retention EM {summary['retention']['exact_match']}, F1 {summary['retention']['f1']}"
        return text


def run_squad(cfg: SquadConfig, log=print, progress=None, should_stop=None) -> dict:
    return run_job(SquadJob(cfg), log=log, progress=progress, should_stop=should_stop)
