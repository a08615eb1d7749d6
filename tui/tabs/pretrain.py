"""The Pretrain tab: the options of `llmlab pretrain`, a data preview and samples on demand; its live view (the loss
chart and generation samples) is tui/kinds/pretrain.py."""

from __future__ import annotations

from textual.binding import Binding

from core.launch import LaunchOptions
from core.pretrain.config import PretrainConfig, demo_config
from tui.messages import PreviewRequested
from tui.options import Preset, form_fields
from tui.tabs.job_tab import JobTab

_DEMO = demo_config()
_ZH = demo_config("zh")


class PretrainTab(JobTab):
    kind = "pretrain"
    title = "Pretrain"
    # processes and fsdp start a multi-process (data-parallel, or sharded) job, as --processes N [--fsdp] do
    fields = form_fields((PretrainConfig, LaunchOptions), ("data", "rows", "epochs", "model_size", "tokenizer", "batch_size",
                                                           "optimizer", "compile", "processes", "fsdp", "out"))
    # What `llmlab pretrain --demo` runs (bundled corpus and tokenizer, tiny model); shown so the
    # form never hides what will happen. Only fields changed after choosing the preset are passed.
    # The numbers come from the engine's own demo config, so the form cannot drift from it.
    demo_values = {
        "data": "bundled demo corpus", "rows": str(_DEMO.rows), "epochs": str(_DEMO.epochs),
        "model-size": _DEMO.model_size, "tokenizer": "bundled gpt2", "batch-size": str(_DEMO.batch_size),
        "compile": _DEMO.compile,
    }
    extra_presets = (Preset("Demo (Chinese): own BPE, samples", {
        "data": "bundled Chinese corpus", "rows": str(_ZH.rows), "epochs": str(_ZH.epochs), "model-size": _ZH.model_size,
        "tokenizer": "train (a BPE on the rows)", "batch-size": str(_ZH.batch_size), "compile": _ZH.compile,
    }, ("--demo", "zh")),)

    help = ("In Pretrain, `p` previews the form's data as its tokenizer sees it (tokens per\nrow, rows a block "
            "cuts), `g` asks a running job for generation samples now, and the\nPreset list has a Chinese demo "
            "(its own BPE, samples at every check).")

    # JobTab's bindings are inherited. Each shows only when it applies (check_action), so the footer
    # still fits 80 columns: samples while a job runs, the data preview while the form is idle.
    BINDINGS = [Binding("g", "samples", "Samples"), Binding("p", "preview", "Preview")]

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "samples":
            return self.progress.active
        if action == "preview":
            return not self.progress.active
        return True

    def action_preview(self) -> None:
        """The form's data as its tokenizer sees it (a Demo preset previews the data it would use)."""
        form = self.query_one("#form")
        values = form.values()
        if form.preset is not None:
            cfg = demo_config("zh" if form.preset.args[-1] == "zh" else "en")
            data, tokenizer, block = cfg.data, cfg.tokenizer, cfg.block_size
        else:
            data, tokenizer, block = values["data"], values["tokenizer"], PretrainConfig().block_size
        note = ""
        if tokenizer == "train":  # not trained yet: preview with GPT-2's BPE and say so
            tokenizer, note = "gpt2", "The run trains its own BPE first; shown here through GPT-2's BPE."
        self.post_message(PreviewRequested(data, tokenizer, block, note))

    def action_samples(self) -> None:
        """Ask the running job for generation samples at its next log step (it watches for this file)."""
        from core.runs import SAMPLE_REQUEST

        if self.run_dir is not None and self.progress.active:
            (self.run_dir / SAMPLE_REQUEST).touch()
            self.notify("Samples at the next log step.", title="Samples")
