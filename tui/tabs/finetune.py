"""The Fine-tune tab: the options of `llmlab finetune`; its live view (train and val loss, the adapter's size, the
test before and after) is tui/kinds/finetune.py."""

from __future__ import annotations

from core.finetune.config import FinetuneConfig, demo_config
from core.launch import LaunchOptions
from tui.options import form_fields
from tui.tabs.job_tab import JobTab

_DEMO = demo_config()


class FinetuneTab(JobTab):
    kind = "finetune"
    title = "Fine-tune"
    # processes and fsdp start a multi-process (data-parallel, or sharded base) job, as --processes N [--fsdp] do
    fields = form_fields((FinetuneConfig, LaunchOptions), ("model", "data", "template", "rank", "alpha", "targets", "lr",
                                                           "epochs", "batch_size", "shuffle_copies", "val_per_subject",
                                                           "test_per_subject", "processes", "fsdp", "out"))
    # What `llmlab finetune --demo` runs, from the engine's own demo config so the form cannot drift.
    demo_values = {
        "model": "bundled demo model", "data": "bundled demo exam", "rank": str(_DEMO.rank), "alpha": str(_DEMO.alpha),
        "lr": str(_DEMO.lr), "epochs": str(_DEMO.epochs), "batch-size": str(_DEMO.batch_size),
        "shuffle-copies": str(_DEMO.shuffle_copies), "val-per-subject": str(_DEMO.val_per_subject),
        "test-per-subject": str(_DEMO.test_per_subject),
    }
