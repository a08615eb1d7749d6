"""One tokenizer-training run on the shared lifecycle: the BPE in tokenizer/, its compression against GPT-2's.

Compression is measured on held-out rows the tokenizer never saw, for the new tokenizer, GPT-2's
BPE and every --compare tokenizer; the summary has tokens per character and per byte for each,
the training time and throughput, and the report a table and a few example segmentations.
"""

from __future__ import annotations

import time
from pathlib import Path

from core.errors import UsageError
from core.lifecycle import Job, RunContext, run_job
from core.runlog import Phase
from core.tokenizer.config import TokenizerConfig

EXAMPLES_SHOWN = 3


class TokenizerJob(Job):
    kind = "tokenizer"
    stop_message = "tokenizer training cannot stop half way; stopping once it is done"

    def prepare(self) -> None:
        from core.corpus import load_corpus
        from core.lm.bpe import comparison_tokenizers

        cfg = self.config
        cfg.validate()
        corpus = load_corpus(cfg.data, cfg.rows, cfg.eval_rows)
        if not any(row.strip() for row in corpus.train):
            raise UsageError(f"{cfg.data} holds no text to train a tokenizer on (only empty rows)")
        self.corpus, self.notes = corpus, []
        self.others = comparison_tokenizers(list(cfg.compare), self.notes)

    def start_fields(self) -> dict:
        return {"rows": len(self.corpus.train), "demo": self.config.demo}

    def run(self, ctx: RunContext) -> dict:
        from core.lm.bpe import measure, round_trip_failures, save_tokenizer, segmentation, train_bpe

        cfg, corpus = self.config, self.corpus
        for note in self.notes:
            ctx.log(note)
        chars = sum(len(r) for r in corpus.train)
        ctx.emit(Phase(name="data", seconds=0.0))
        t = time.perf_counter()
        tok = train_bpe(corpus.train, cfg.vocab_size, cfg.min_frequency, tuple(cfg.special), cfg.nfkc, len(corpus.train))
        seconds = time.perf_counter() - t
        ctx.emit(Phase(name="train_tokenizer", seconds=round(seconds, 3)))
        save_tokenizer(tok, ctx.run_dir / "tokenizer")
        held = corpus.held_out or corpus.train[-100:]
        figures = measure({"llmlab BPE (this run)": tok, **self.others}, held)
        failures = round_trip_failures(tok, held)
        examples = [{"text": text, **{name: segmentation(t, text) for name, t in {"llmlab BPE (this run)": tok,
                                                                                  **self.others}.items()}}
                    for text in held[:EXAMPLES_SHOWN]]
        ctx.say(f"tokenizer saved to {ctx.run_dir / 'tokenizer'}: {len(tok)} tokens, "
                f"{figures['llmlab BPE (this run)']['tokens_per_char']} tokens per character on held-out text")
        return {
            "tokenizer_dir": str(ctx.run_dir / "tokenizer"), "vocab_size": len(tok), "asked_vocab_size": cfg.vocab_size,
            "data_source": corpus.source, "rows": len(corpus.train), "held_out_rows": len(held),
            "held_out": corpus.held_out_note if corpus.held_out else "none held out: the last 100 training rows",
            "train_seconds": round(seconds, 3), "chars_trained": chars,
            "chars_per_second": round(chars / seconds, 1) if seconds else None,
            "compression": figures, "round_trip_failures": len(failures),
            "round_trip_ok": not failures or cfg.nfkc, "nfkc": cfg.nfkc, "examples": examples,
            "special_tokens": ["<|endoftext|>", *cfg.special],
        }

    def report(self, run_dir: Path, summary: dict) -> str:
        s = summary
        lines = [f"# Byte-level BPE — {run_dir.name}", "", f"Status: **{s['status']}**" +
                 (f" ({s['error']})" if s.get("error") else ""), ""]
        if "compression" not in s:
            return "\n".join(lines)
        lines += [f"{s['vocab_size']:,} tokens trained on {s['rows']:,} rows ({s['chars_trained']:,} characters) of "
                  f"{s['data_source']} in {s['train_seconds']:.1f} s ({s['chars_per_second']:,.0f} characters/s); saved in "
                  f"`tokenizer/` (AutoTokenizer loads it; `llmlab pretrain --tokenizer {run_dir}` uses it).", "",
                  f"Compression on {s['held_out_rows']} held-out rows ({s['held_out']}):", "",
                  "| tokenizer | tokens | tokens per character | tokens per byte |", "|---|---|---|---|"]
        for name, c in s["compression"].items():
            lines.append(f"| {name} | {c['tokens']:,} | {c['tokens_per_char']} | {c['tokens_per_byte']} |")
        lines += ["", f"Round trip: {s['round_trip_failures']} held-out rows do not decode back exactly"
                  + (" (NFKC normalization is on)" if s["nfkc"] else "") + ".", "", "## Example segmentations", ""]
        for example in s["examples"]:
            lines += [f"`{example['text']}`", ""]
            for name, pieces in example.items():
                if name != "text":
                    lines.append(f"- {name} ({len(pieces)}): " + " | ".join(pieces))
            lines.append("")
        return "\n".join(lines)

    def closing_line(self, summary: dict, run_dir: Path) -> str | None:
        return f"{summary['status']} in {summary['total_seconds']:.1f} s; report: {run_dir / 'report.md'}"


def run_tokenizer(cfg: TokenizerConfig, log=print) -> dict:
    return run_job(TokenizerJob(cfg), log=log)
