"""`?`: what each tab shows and every key."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown


def help_text(job_tabs) -> str:
    """The help, with the tabs and their keys taken from the job tabs (anything with `title` and `help`)."""
    titles = ["Hardware", *(tab.title for tab in job_tabs), "Runs"]
    keys = " ".join(f"`{n}`" for n in range(1, len(titles) + 1))
    extras = "".join(f" {tab.help}" for tab in job_tabs if getattr(tab, "help", ""))
    return f"""\
# llmlab

Pretrain GPT-2 and evaluate small language models. Jobs run as separate processes
(`llmlab pretrain ...`, `llmlab eval ...`) that write into a run folder; this app follows
their files, so closing it never stops a job unless you ask.

| Key | Does |
|---|---|
| {keys} | {", ".join(titles)} tab |
| `?` | this help |
| `q` | quit (asks first when a job is running) |
| `Tab` / `Shift+Tab` | move between fields and panels |
| `Esc` | leave a form field, close a screen |

**{" / ".join(tab.title for tab in job_tabs)}:** `s` or Enter in a field starts a job, `x` stops it (SIGINT: it
finishes the current step and saves status *stopped*; press again after 10 s to end it),
`d` fills the Demo preset (offline, small), `f` switches form and live view on narrow
terminals, `o` opens the finished run's report.{extras}

**Runs:** `o` or Enter opens a run from disk, `m` marks a run (six at most), `c` compares
the marked runs (figures, config differences, and loss curves or the answers question by
question, e.g. several adapters and their vote), `t` talks to a finished run's model
(type a prompt, watch the continuation stream in), `r` reloads.

Run folders live in `$LLMLAB_RUNS_DIR` (default `./runs`). Each job's own output is in its
`job.log`; when a job fails the app shows the last lines of it.

*Arrows or Page Down scroll this help; Esc or `?` closes it.*
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]
    AUTO_FOCUS = "#help"  # so arrows and Page Down scroll it: at 80x24 most of it is below the fold

    def __init__(self, job_tabs) -> None:
        """`job_tabs`: the app's job tabs, whose titles and help sentences the help lists."""
        super().__init__()
        self.job_tabs = job_tabs

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help", classes="dialog"):
            yield Markdown(help_text(self.job_tabs))
