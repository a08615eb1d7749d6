"""The app's job tabs, registered in one place: a kind's tab is one module here and one line below.

The app builds its tabs, number keys and help text from this list (in this order, between Hardware
and Runs); nothing in tui/app.py names a kind. What a kind's run looks like, live or from disk, is
its module in tui/kinds/; a kind without a tab still shows in the Runs tab and opens there.
"""

from __future__ import annotations

from functools import lru_cache

JOB_TABS = (
    "tui.tabs.pretrain:PretrainTab",
    "tui.tabs.evaluate:EvaluateTab",
    "tui.tabs.finetune:FinetuneTab",
)


@lru_cache(maxsize=1)
def job_tab_classes() -> tuple:
    from core.kinds import load

    return tuple(load(path) for path in JOB_TABS)
