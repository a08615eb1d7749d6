"""What machine a run used (for reports) and live readings (for the app's hardware tab).

NVML is initialised once, lazily; with no NVIDIA driver or no `pynvml` every GPU function
returns an empty list instead of raising.
"""

from __future__ import annotations

import os
import platform
import sys
from functools import lru_cache
from importlib import metadata
from typing import Any


@lru_cache(maxsize=1)
def _nvml():
    """The initialised pynvml module, or None when there is no usable NVIDIA driver."""
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # ImportError, NVMLError_LibraryNotFound, driver errors: all mean "no GPU"
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _call(fn, *args, default=None):
    try:
        return fn(*args)
    except Exception:
        return default


def gpu_static() -> tuple[list[dict], str | None]:
    """(one dict per GPU with name and memory, driver version) or ([], None) without NVML."""
    nv = _nvml()
    if nv is None:
        return [], None
    gpus = []
    for i in range(_call(nv.nvmlDeviceGetCount, default=0)):
        h = nv.nvmlDeviceGetHandleByIndex(i)
        mem = _call(nv.nvmlDeviceGetMemoryInfo, h)
        gpus.append({
            "index": i,
            "name": _text(_call(nv.nvmlDeviceGetName, h, default="unknown")),
            "memory_total_mib": round(mem.total / 2**20) if mem else None,
        })
    return gpus, _text(_call(nv.nvmlSystemGetDriverVersion, default="unknown"))


def gpu_live() -> list[dict]:
    """Current utilisation, memory, temperature, power, clocks and processes of every GPU."""
    nv = _nvml()
    if nv is None:
        return []
    out = []
    for i in range(_call(nv.nvmlDeviceGetCount, default=0)):
        h = nv.nvmlDeviceGetHandleByIndex(i)
        mem = _call(nv.nvmlDeviceGetMemoryInfo, h)
        util = _call(nv.nvmlDeviceGetUtilizationRates, h)
        power = _call(nv.nvmlDeviceGetPowerUsage, h)
        limit = _call(nv.nvmlDeviceGetEnforcedPowerLimit, h)
        procs = _call(nv.nvmlDeviceGetComputeRunningProcesses, h, default=[]) or []
        out.append({
            "index": i,
            "name": _text(_call(nv.nvmlDeviceGetName, h, default="unknown")),
            "util_percent": util.gpu if util else None,
            "memory_used_mib": round(mem.used / 2**20) if mem else None,
            "memory_total_mib": round(mem.total / 2**20) if mem else None,
            "temperature_c": _call(nv.nvmlDeviceGetTemperature, h, 0),  # 0 = NVML_TEMPERATURE_GPU
            "power_w": round(power / 1000) if power is not None else None,
            "power_limit_w": round(limit / 1000) if limit is not None else None,
            "sm_clock_mhz": _call(nv.nvmlDeviceGetClockInfo, h, 1),  # 1 = NVML_CLOCK_SM
            "mem_clock_mhz": _call(nv.nvmlDeviceGetClockInfo, h, 2),  # 2 = NVML_CLOCK_MEM
            "processes": [
                {"pid": p.pid, "memory_mib": round((p.usedGpuMemory or 0) / 2**20)} for p in procs
            ],
        })
    return out


def cpu_model() -> str:
    """The CPU's marketing name (Linux /proc/cpuinfo, else platform.processor())."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def snapshot() -> dict:
    """The hardware and software a run used, as stored in every summary.json."""
    import psutil

    gpus, driver = gpu_static()
    cuda = None
    if "torch" in sys.modules or _version("torch"):
        try:
            import torch

            cuda = torch.version.cuda if torch.cuda.is_available() else None
        except Exception:
            cuda = None
    vm = psutil.virtual_memory()
    return {
        "gpus": gpus,
        "gpu_driver": driver,
        "cuda": cuda,
        "cpu": cpu_model(),
        "cpu_cores_physical": psutil.cpu_count(logical=False),
        "cpu_cores_logical": psutil.cpu_count(logical=True),
        "ram_gib": round(vm.total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "accelerate": _version("accelerate"),
        "hostname": platform.node(),
        "pid": os.getpid(),
    }


def describe(hw: dict) -> list[tuple[str, str]]:
    """(label, value) rows for a table or a report."""
    gpus = hw.get("gpus") or []
    gpu_text = ", ".join(f"{g['name']} ({g['memory_total_mib'] / 1024:.0f} GiB)" for g in gpus if g.get("memory_total_mib")) or (
        ", ".join(g["name"] for g in gpus) if gpus else "none"
    )
    rows = [
        ("GPU", gpu_text),
        ("GPU driver", hw.get("gpu_driver") or "-"),
        ("CUDA", hw.get("cuda") or "-"),
        ("CPU", f"{hw.get('cpu')} ({hw.get('cpu_cores_physical')} cores, {hw.get('cpu_cores_logical')} threads)"),
        ("RAM", f"{hw.get('ram_gib')} GiB"),
        ("Python", hw.get("python") or "-"),
        ("torch", hw.get("torch") or "-"),
        ("transformers", hw.get("transformers") or "-"),
        ("accelerate", hw.get("accelerate") or "-"),
        ("Platform", hw.get("platform") or "-"),
    ]
    return rows


def markdown_table(hw: dict) -> str:
    lines = ["| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in describe(hw)]
    return "\n".join(lines)


# Dense bf16 tensor-core peaks from the vendors' data sheets, for MFU. Keys are matched
# against the NVML name in order, so the more specific names come first.
_PEAK_BF16_TFLOPS = [
    ("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0), ("L40S", 362.0),
    ("L4", 121.0), ("A10G", 70.0), ("A10", 125.0), ("RTX 4090", 165.0), ("RTX 3090", 71.0), ("V100", 125.0),
]


def peak_bf16_flops(gpu_name: str | None) -> float | None:
    """The device's peak dense bf16 FLOP/s, or None when we do not know it."""
    if not gpu_name:
        return None
    for key, tflops in _PEAK_BF16_TFLOPS:
        if key.lower() in gpu_name.lower():
            return tflops * 1e12
    return None
