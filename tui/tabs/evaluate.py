"""The Evaluate tab: the options of `llmlab eval`; its live view (the questions filling a table) is tui/kinds/eval.py."""

from __future__ import annotations

from core.eval.config import EvalConfig
from tui.options import form_fields
from tui.tabs.job_tab import JobTab


class EvaluateTab(JobTab):
    kind = "eval"
    title = "Evaluate"
    fields = form_fields(EvalConfig, ("model", "data", "locale", "subject", "limit", "max_new_tokens", "batch_size",
                                      "mode", "dtype"))
    demo_values = {"model": "bundled demo model", "data": "bundled demo questions"}
    help = "In Evaluate, Enter on a row shows the full\nprompt and reply."
