"""Talk to a finished run's model: type a prompt, watch the continuation stream in.

The model loads in a thread worker the first time (seconds for a tiny model); each reply streams
piece by piece through posted messages, so the screen stays responsive.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Callable

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

MAX_NEW_TOKENS = 64


class ChatScreen(Screen[None]):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back")]
    AUTO_FOCUS = "#chat-input"

    class Piece(Message):
        """Some more text of the reply being generated."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class Ended(Message):
        """The reply is complete, or failed with `error`."""

        def __init__(self, error: str | None = None) -> None:
            super().__init__()
            self.error = error

    def __init__(self, name: str, make_chat) -> None:
        """`make_chat()` gives an object with reply(prompt, on_text, max_new_tokens) -> str (core.generate.ModelChat,
        or a fake in tests); it is called in the worker thread, since loading a model takes a while."""
        super().__init__()
        self.run_name, self.make_chat, self.chat = name, make_chat, None
        self.reply: Static | None = None
        self.busy = self.waiting = False

    @classmethod
    def for_run(cls, run_dir: Path, chat_factory: Callable | None = None) -> ChatScreen:
        """The screen for a run folder; UsageError when it holds no model. `chat_factory(run_dir)` replaces the model."""
        if chat_factory is not None:
            return cls(run_dir.name, partial(chat_factory, run_dir))
        from core.generate import ModelChat, model_of_run

        model, adapters, demo = model_of_run(run_dir)  # cheap file checks; the model loads in the worker
        return cls(run_dir.name, partial(ModelChat, model, adapters, demo))

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(("Chat ", "bold"), (self.run_name, ""), ("  greedy, up to "
                                   f"{MAX_NEW_TOKENS} new tokens; the model continues what you type", "dim")),
                     classes="screen-title")
        yield VerticalScroll(id="conversation")
        yield Input(placeholder="Type a prompt, then Enter", id="chat-input")
        yield Footer(compact=True)

    @on(Input.Submitted, "#chat-input")
    def _submitted(self, event: Input.Submitted) -> None:
        prompt = event.value.strip()
        if not prompt or self.busy:
            return
        event.input.value = ""
        self.busy = True
        box = self.query_one("#conversation", VerticalScroll)
        box.mount(Static(Text(f"> {prompt}", style="bold cyan"), classes="chat-prompt"))
        self.reply_text = Text(prompt, style="dim")
        self.waiting = self.chat is None  # the first reply loads the model first: say so until text arrives
        self.reply = Static(self.reply_text + Text("  (loading the model…)", style="dim italic") if self.waiting
                            else self.reply_text, classes="chat-reply")
        box.mount(self.reply)
        box.scroll_end(animate=False)
        self._generate(prompt)

    @work(thread=True, exit_on_error=False, group="chat", description="Generating a reply")
    def _generate(self, prompt: str) -> None:
        try:
            if self.chat is None:
                self.chat = self.make_chat()
            self.chat.reply(prompt, lambda piece: self.post_message(self.Piece(piece)), MAX_NEW_TOKENS)
            self.post_message(self.Ended())
        except Exception as exc:  # a UsageError (prompt too long) or a load failure: shown, not a crash
            self.post_message(self.Ended(str(exc).splitlines()[0] if str(exc) else type(exc).__name__))

    @on(Piece)
    def _piece(self, message: Piece) -> None:
        if self.reply is not None:
            self.reply_text.append(message.text, style="")
            self.reply.update(self.reply_text)
            self.query_one("#conversation", VerticalScroll).scroll_end(animate=False)

    @on(Ended)
    def _ended(self, message: Ended) -> None:
        self.busy = False
        if self.reply is not None:
            if message.error:
                self.reply_text.append(f"\n{message.error}", style="red")
            self.reply.update(self.reply_text)  # also drops the "loading" note of an empty first reply
