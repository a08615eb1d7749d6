"""Fakes for the app's outside world (hardware, clock, job processes) and sample run folders on disk."""

from __future__ import annotations

import asyncio
import functools
import json
import sys
import time
from pathlib import Path

import pytest

from tui.hardware import HardwareSample
from tui.jobs import Launcher

FAKE_JOB = Path(__file__).with_name("fake_job.py")
T0 = 1_767_268_800.0  # 2026-01-01 12:00 UTC: every fake run starts here or later
SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]


def tab_key(pane: str) -> str:
    """The number key of a tab ("runs", "eval", ...), from the app's own tab list, so new tabs move nothing here."""
    from tui.app import tab_panes

    return str([p for p, _ in tab_panes()].index(pane) + 1)


RUNS_KEY = tab_key("runs")


# ----------------------------------------------------------------------------- fakes


class FakeHardware:
    """A machine with `gpus` GPUs whose readings follow a fixed wave, one step per sample."""

    def __init__(self, gpus: int = 2, cores: int = 16, fail: bool = False):
        self.gpus, self.cores, self.fail = gpus, cores, fail
        self.n = 0

    def sample(self) -> HardwareSample:
        if self.fail:
            raise RuntimeError("NVML exploded (fake)")
        n = self.n
        self.n += 1
        wave = [0, 10, 30, 55, 80, 95, 70, 40, 20, 5]
        gpus = [{
            "index": i, "name": "NVIDIA H100 80GB HBM3", "util_percent": wave[(n + 3 * i) % 10],
            "memory_used_mib": 20_000 + 4_000 * i + 500 * (n % 7), "memory_total_mib": 81_559,
            "temperature_c": 41 + i, "power_w": 120 + 40 * i + 3 * (n % 10), "power_limit_w": 700,
            "sm_clock_mhz": 1980, "mem_clock_mhz": 2619,
            "processes": [{"pid": 4242 + i, "memory_mib": 18_000 + 4_000 * i}] if i == 0 else [],
        } for i in range(self.gpus)]
        return HardwareSample(
            time=T0 + n, gpus=gpus, cpu_model="AMD EPYC 9654 96-Core Processor",
            cpu_percent=[float(wave[(n + c // 8) % 10]) for c in range(self.cores)],
            ram_used_mib=48_000 + 100 * (n % 5), ram_total_mib=257_000, swap_used_mib=0, swap_total_mib=8_192,
            disk_path="./runs", disk_used_mib=1_200_000, disk_total_mib=3_500_000,
            process_names={4242: "python"},
        )


class FixedClock:
    def __init__(self, now: float = T0 + 83):
        self.now = now

    def __call__(self) -> float:
        return self.now


class FakeLauncher(Launcher):
    """Runs tests/functional/fake_job.py instead of the engine, with the same options and --out."""

    def __init__(self, steps: int = 10, delay: float = 0.01, fail: bool = False, forever: bool = False):
        self.flags = ["--steps", str(steps), "--delay", str(delay)] + ["--fail"] * fail + ["--forever"] * forever

    def argv(self, kind: str, options: list[str], run_dir: Path) -> list[str]:
        return [sys.executable, str(FAKE_JOB), *self.flags, kind, *options, "--out", str(run_dir)]


# ----------------------------------------------------------------------------- sample runs on disk


def pretrain_events(steps: int = 60, t0: float = T0, status: str | None = "completed", pid: int = 999_999) -> list[dict]:
    events = [{"type": "start", "time": t0, "elapsed": 0.0, "kind": "pretrain", "pid": pid, "run_dir": "x",
               "total_steps": steps * 2 if status is None else steps, "steps_per_epoch": steps // 3, "epochs": 3}]
    for name, secs in (("data", 2.1), ("tokenize", 4.3), ("model_init", 1.2)):
        events.append({"type": "phase", "time": t0 + 8, "elapsed": 8.0, "name": name, "seconds": secs})
    events.append({"type": "log", "time": t0 + 8, "elapsed": 8.0, "message": "GPT-2 124M, 10,000 rows, 3 epochs"})
    for step in range(1, steps + 1):
        loss = 3.1 + 7.8 / (1 + 0.15 * step) + 0.15 * ((step * 7919) % 13) / 13
        elapsed = 8.0 + step * 1.25
        events.append({"type": "loss", "time": t0 + elapsed, "elapsed": elapsed, "step": step,
                       "epoch": (step - 1) // (steps // 3) + 1, "loss": round(loss, 4), "lr": 1e-3,
                       "tokens_per_s": 52_400.0})
        if step % (steps // 3) == 0:
            events.append({"type": "eval", "time": t0 + elapsed, "elapsed": elapsed, "epoch": step // (steps // 3),
                           "step": step, "eval_loss": round(loss + 0.25, 4)})
    if status is not None:
        events.append({"type": "end", "time": t0 + 90, "elapsed": 90.0, "status": status})
    return events


def finetune_events(steps: int = 36, t0: float = T0, status: str | None = "completed") -> list[dict]:
    """A LoRA run's events: the plan, the adapter's size, a falling train loss, val checks, the test answers."""
    events = [{"type": "start", "time": t0, "elapsed": 0.0, "kind": "finetune", "pid": 999_999, "run_dir": "x", "epochs": 6},
              {"type": "progress", "time": t0 + 3, "elapsed": 3.0, "done": 18, "total": 18, "phase": "before"},
              {"type": "lora", "time": t0 + 3, "elapsed": 3.0, "trainable_params": 540_672, "total_params": 494_032_768,
               "trainable_ratio": 540_672 / 494_032_768, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]},
              {"type": "plan", "time": t0 + 3, "elapsed": 3.0, "total_steps": steps, "steps_per_epoch": steps // 6}]
    for step in range(1, steps + 1):
        elapsed = 3.0 + step * 0.5
        if step % 5 == 0 or step % (steps // 6) == 0:
            events.append({"type": "loss", "time": t0 + elapsed, "elapsed": elapsed, "step": step,
                           "epoch": (step - 1) // (steps // 6) + 1, "loss": round(2.4 / (1 + 0.08 * step), 4),
                           "lr": 1e-4, "tokens_per_s": 8_100.0})
        if step % (steps // 6) == 0:
            events.append({"type": "eval", "time": t0 + elapsed, "elapsed": elapsed, "step": step, "epoch": step // (steps // 6),
                           "eval_loss": round(2.6 / (1 + 0.06 * step), 4)})
    if status is not None:
        events.append({"type": "progress", "time": t0 + 25, "elapsed": 25.0, "done": 18, "total": 18, "phase": "after"})
        events.append({"type": "end", "time": t0 + 26, "elapsed": 26.0, "status": status})
    return events


def eval_rows(n: int = 12) -> list[dict]:
    rows = []
    for index in range(n):
        gold = "ABCD"[index % 4]
        pred = [gold, gold, "B", None, "D"][index % 5]
        rows.append({"index": index, "subject": "moral_scenarios", "question": f"场景 {index}",
                     "prompt": f"以下是关于道德情景的单项选择题。\n问题 {index}\nA. 错，错\nB. 错，不错\nC. 不错，错\nD. 不错，不错\n答案：",
                     "gold": gold, "pred": pred, "correct": pred == gold,
                     "output": f"答案是 {pred or '?'}。因为第一个情景中的行为在道德上是{'错误' if index % 2 else '正确'}的，第二个情景……",
                     "new_tokens": 40 + index})
    return rows


def eval_events(n: int = 12, total: int = 100, t0: float = T0, status: str | None = "completed", pid: int = 999_999) -> list[dict]:
    events = [{"type": "start", "time": t0, "elapsed": 0.0, "kind": "eval", "pid": pid, "total": total, "run_dir": "x"},
              {"type": "log", "time": t0 + 5, "elapsed": 5.0, "message": "Qwen/Qwen2.5-0.5B loaded in bf16"}]
    for done in range(4, n + 1, 4):
        events.append({"type": "progress", "time": t0 + 5 + done, "elapsed": 5.0 + done, "done": done,
                       "total": total, "tokens_per_s": 812.0, "batch_size": 4})
    if status is not None:
        events.append({"type": "end", "time": t0 + 30, "elapsed": 30.0, "status": status})
    return events


def write_run(root: Path, name: str, kind: str, events: list[dict], summary: dict | None = None,
              results: list[dict] | None = None, config: dict | None = None, log: str = "") -> Path:
    path = root / name
    path.mkdir(parents=True)
    base = {"kind": kind, "seed": 1337}
    if kind == "pretrain":
        base.update(data="bookcorpus/bookcorpus", rows=10_000, epochs=3, model_size="default", batch_size=16, lr=1e-3)
    else:
        base.update(model="Qwen/Qwen2.5-0.5B", data="openai/MMMLU", locale="ZH_CN", subject="moral_scenarios",
                    limit=100, mode="generate")
    base.update(config or {})
    (path / "config.json").write_text(json.dumps(base))
    (path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    if results is not None:
        (path / "results.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in results))
    if summary is not None:
        (path / "summary.json").write_text(json.dumps({"kind": kind, **summary}))
        (path / "report.md").write_text(f"# {name}\n\nstatus {summary.get('status')}\n")
    (path / "job.log").write_text(log)
    return path


async def wait_until(pilot, predicate, timeout: float = 10.0, step: float = 0.05) -> None:
    """Let the app run until `predicate()` holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate.__doc__ or predicate}")
        await pilot.pause(step)


@functools.lru_cache(maxsize=None)
def run_async(test):
    """Run an `async def` test on a fresh event loop (the suite needs no asyncio pytest plugin)."""

    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return wrapper
