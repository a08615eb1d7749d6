"""One NVIDIA GPU: utilisation, memory and power gauges, temperature, clocks and its processes."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from tui import format as fmt
from tui.widgets.meter import Meter


def _fraction(part: float | None, whole: float | None) -> float | None:
    return part / whole if part is not None and whole else None


def _value(value: object, unit: str) -> str:
    return "-" if value is None else f"{value}{unit}"


class GpuPanel(Vertical):
    """A bordered panel for GPU `index`; `show()` takes one dict of `core.hardware.gpu_live()`."""

    def __init__(self, index: int, gpu: dict | None = None, process_names: dict | None = None) -> None:
        super().__init__(id=f"gpu-{index}", classes="panel gpu")
        self.index = index
        self.border_title = f"GPU {index}"
        self._pending = (gpu, process_names or {})
        self._ready = False

    def on_mount(self) -> None:
        self._ready = True
        gpu, names = self._pending
        if gpu is not None:
            self.show(gpu, names)

    def compose(self) -> ComposeResult:
        yield Meter("util", id="util")
        yield Meter("memory", id="memory")
        yield Meter("power", id="power")
        yield Static(id="details", classes="details")
        yield Static(id="processes", classes="details")

    def show(self, gpu: dict, process_names: dict) -> None:
        if not self._ready:  # readings that arrive while the panel mounts: keep the newest
            self._pending = (gpu, process_names)
            return
        self.border_title = f"GPU {gpu.get('index', self.index)} · {gpu.get('name', 'unknown')}"
        util = gpu.get("util_percent")
        self.query_one("#util", Meter).update(_fraction(util, 100), _value(util, "%"))
        used, total = gpu.get("memory_used_mib"), gpu.get("memory_total_mib")
        self.query_one("#memory", Meter).update(_fraction(used, total), fmt.used_of(used, total))
        power, limit = gpu.get("power_w"), gpu.get("power_limit_w")
        watts = f"{_value(power, '')}/{_value(limit, ' W')}" if limit else _value(power, " W")
        self.query_one("#power", Meter).update(_fraction(power, limit), watts)
        details = Text(no_wrap=True, overflow="ellipsis")
        details.append("temp ", style="dim").append(_value(gpu.get("temperature_c"), "°C"))
        details.append("  SM ", style="dim").append(_value(gpu.get("sm_clock_mhz"), " MHz"))
        details.append("  mem ", style="dim").append(_value(gpu.get("mem_clock_mhz"), " MHz"))
        self.query_one("#details", Static).update(details)
        procs = gpu.get("processes") or []
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("processes ", style="dim")
        if not procs:
            text.append("none", style="dim")
        for i, proc in enumerate(sorted(procs, key=lambda p: -(p.get("memory_mib") or 0))):
            if i:
                text.append(" · ", style="dim")
            name = process_names.get(proc.get("pid"), "")
            text.append(f"{proc.get('pid')} {name} {fmt.gib(proc.get('memory_mib'))}".replace("  ", " "))
        self.query_one("#processes", Static).update(text)
