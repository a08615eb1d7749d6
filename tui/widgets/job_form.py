"""A job's options as a compact form (one line per field) with a Demo preset switch."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Input, Label, Select

from tui.options import Field, FormError, Preset, defaults, preset


class JobForm(VerticalScroll):
    """Fields made from `Field`s; `values()` reads them and `preset` says which Demo preset is on (None: none)."""

    class Submitted(Message):
        """Enter was pressed in one of the form's inputs."""

    def __init__(self, fields: tuple[Field, ...], demo_values: dict, id: str | None = None,
                 presets: tuple[Preset, ...] = ()) -> None:
        super().__init__(id=id, classes="job-form")
        self.fields = fields
        self.presets = (Preset("Demo: offline and small", demo_values), *presets)
        self.choice = 0  # 0: the seed task's defaults; n: self.presets[n - 1]

    @property
    def demo(self) -> bool:
        return self.choice != 0

    @property
    def preset(self) -> Preset | None:
        return self.presets[self.choice - 1] if self.choice else None

    def compose(self) -> ComposeResult:
        with Horizontal(classes="form-row"):
            yield Label("Preset", classes="form-label")
            yield Select([("seed task defaults", 0), *((p.label, i) for i, p in enumerate(self.presets, 1))], value=0,
                         allow_blank=False, id="demo", compact=True)
        for f in self.fields:
            with Horizontal(classes="form-row"):
                yield Label(f.label, classes="form-label")
                yield self._make_input(f)

    def _make_input(self, f: Field):
        widget_id = f"field-{f.name}"
        if f.flag:
            return Select([("off", False), ("on", True)], value=bool(f.default), allow_blank=False, id=widget_id,
                          compact=True)
        if f.choices:
            return Select([(c, c) for c in f.choices], value=f.default, allow_blank=False, id=widget_id, compact=True)
        return Input(str(f.default), placeholder=f.placeholder, id=widget_id, compact=True,
                     type="integer" if f.integer else "text")

    def _widget(self, f: Field):
        return self.query_one(f"#field-{f.name}")

    def values(self) -> dict[str, str | bool]:
        out: dict[str, str | bool] = {}
        for f in self.fields:
            widget = self._widget(f)
            out[f.name] = bool(widget.value) if f.flag else str(widget.value)
        return out

    def set_values(self, values: dict[str, str | bool]) -> None:
        for f in self.fields:
            if f.name in values:
                self._widget(f).value = values[f.name]

    def use_demo(self, on_: bool) -> None:
        """Fill the form with the (first) Demo preset, or back with the seed task's defaults."""
        self.use_preset(1 if on_ else 0)

    def use_preset(self, choice: int) -> None:
        self.choice = choice
        self.set_values(preset(self.fields, self.preset.values) if self.preset else defaults(self.fields))
        select = self.query_one("#demo", Select)
        if select.value != choice:
            with select.prevent(Select.Changed):
                select.value = choice

    def mark_error(self, error: FormError | None) -> None:
        for f in self.fields:
            self._widget(f).set_class(error is not None and error.field == f, "-invalid")
        if error is not None:
            self._widget(error.field).focus()

    @on(Select.Changed, "#demo")
    def _demo_toggled(self, event: Select.Changed) -> None:
        event.stop()
        if event.value != self.choice:
            self.use_preset(int(event.value))

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.post_message(self.Submitted())
