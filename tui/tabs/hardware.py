"""The Hardware tab: every NVIDIA GPU, the CPU per core, RAM, swap and the runs folder's disk, once a second."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from tui import format as fmt
from tui.hardware import HardwareSample
from tui.widgets.core_strip import CoreStrip
from tui.widgets.gpu_panel import GpuPanel
from tui.widgets.meter import Meter

NO_GPU = (
    "No NVIDIA GPU found.\n"
    "NVML (the NVIDIA driver's monitoring library) is not available here, so there is nothing to show. "
    "Jobs still run, on the CPU."
)


def _fraction(used: float, total: float) -> float | None:
    return used / total if total else None


class HardwareTab(VerticalScroll, can_focus=True):
    """Panels that `show()` fills from each HardwareSample; GPU panels appear as GPUs are seen."""

    def compose(self) -> ComposeResult:
        with Vertical(id="cpu-panel", classes="panel"):
            yield Static("waiting for the first reading…", id="cpu-model", classes="details")
            yield Meter("CPU", id="cpu-total")
            yield CoreStrip(id="cores")
            yield Meter("RAM", id="ram")
            yield Meter("swap", id="swap")
            yield Meter("disk", id="disk")
        yield Vertical(id="gpus")
        yield Static(NO_GPU, id="no-gpu", classes="panel calm")

    def on_mount(self) -> None:
        self.query_one("#cpu-panel").border_title = "CPU and memory"
        self.query_one("#no-gpu").border_title = "GPU"
        self.query_one("#no-gpu").display = False

    def show(self, sample: HardwareSample) -> None:
        cores = len(sample.cpu_percent)
        model = Text(no_wrap=True, overflow="ellipsis")
        model.append(sample.cpu_model or "CPU").append(f"  {cores} threads", style="dim")
        self.query_one("#cpu-model", Static).update(model)
        total = sample.cpu_total
        self.query_one("#cpu-total", Meter).update(total / 100, f"{total:.0f}%")
        self.query_one("#cores", CoreStrip).update(sample.cpu_percent)
        self.query_one("#ram", Meter).update(
            _fraction(sample.ram_used_mib, sample.ram_total_mib),
            fmt.used_of(sample.ram_used_mib, sample.ram_total_mib))
        self.query_one("#swap", Meter).update(
            _fraction(sample.swap_used_mib, sample.swap_total_mib),
            fmt.used_of(sample.swap_used_mib, sample.swap_total_mib) if sample.swap_total_mib else "none")
        self.query_one("#disk", Meter).update(
            _fraction(sample.disk_used_mib, sample.disk_total_mib),
            fmt.used_of(sample.disk_used_mib, sample.disk_total_mib))
        self.query_one("#cpu-panel").border_subtitle = f"disk: runs folder {sample.disk_path}"
        self._show_gpus(sample)

    def _show_gpus(self, sample: HardwareSample) -> None:
        container = self.query_one("#gpus", Vertical)
        panels = {p.index: p for p in container.query(GpuPanel)}
        for gpu in sample.gpus:
            index = gpu.get("index", 0)
            if index not in panels:
                panels[index] = GpuPanel(index, gpu, sample.process_names)
                container.mount(panels[index])
            else:
                panels[index].show(gpu, sample.process_names)
        self.query_one("#no-gpu").display = not sample.gpus
