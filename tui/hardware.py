"""Live readings for the Hardware tab: every NVIDIA GPU, the CPU, memory, swap and the runs folder's disk.

The app takes any object with a `sample()` method, so tests pass a fake and snapshots never
depend on the machine they run on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass
class HardwareSample:
    """One reading of the machine. GPU dicts follow `core.hardware.gpu_live()`."""

    time: float
    gpus: list[dict] = field(default_factory=list)
    cpu_model: str = ""
    cpu_percent: list[float] = field(default_factory=list)  # one per logical core
    ram_used_mib: float = 0.0
    ram_total_mib: float = 0.0
    swap_used_mib: float = 0.0
    swap_total_mib: float = 0.0
    disk_path: str = ""
    disk_used_mib: float = 0.0
    disk_total_mib: float = 0.0
    process_names: dict = field(default_factory=dict)  # pid -> name, for the GPU process lists

    @property
    def cpu_total(self) -> float:
        return sum(self.cpu_percent) / len(self.cpu_percent) if self.cpu_percent else 0.0


class HardwareSource(Protocol):
    def sample(self) -> HardwareSample: ...


class LiveHardware:
    """Reads this machine with psutil and NVML (initialised once, on the first sample)."""

    def __init__(self, runs_root: Path):
        self.runs_root = Path(runs_root)
        self._cpu_model: str | None = None

    def _disk_path(self) -> Path:
        path = self.runs_root.resolve()
        while not path.exists() and path != path.parent:
            path = path.parent
        return path

    def sample(self) -> HardwareSample:
        import psutil

        from core.hardware import cpu_model, gpu_live

        if self._cpu_model is None:
            self._cpu_model = cpu_model()
        gpus = gpu_live()
        names = {}
        for gpu in gpus:
            for proc in gpu.get("processes") or []:
                try:
                    names[proc["pid"]] = psutil.Process(proc["pid"]).name()
                except Exception:
                    names[proc["pid"]] = "?"
        vm, swap = psutil.virtual_memory(), psutil.swap_memory()
        disk_path = self._disk_path()
        try:
            disk = psutil.disk_usage(str(disk_path))
            disk_used, disk_total = disk.used / 2**20, disk.total / 2**20
        except OSError:
            disk_used = disk_total = 0.0
        return HardwareSample(
            time=time.time(),
            gpus=gpus,
            cpu_model=self._cpu_model,
            cpu_percent=list(psutil.cpu_percent(percpu=True)),
            ram_used_mib=(vm.total - vm.available) / 2**20,
            ram_total_mib=vm.total / 2**20,
            swap_used_mib=swap.used / 2**20,
            swap_total_mib=swap.total / 2**20,
            disk_path=str(self.runs_root),
            disk_used_mib=disk_used,
            disk_total_mib=disk_total,
            process_names=names,
        )
