"""Suite-wide settings: never touch the hub, keep runs and caches inside the test's tmp folder."""

from __future__ import annotations

import os
import tempfile

# A Hugging Face cache of the suite's own, set before anything imports huggingface_hub: on a
# machine with Qwen (or any model) cached, an "offline" test must still never find real weights.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="llmlab-tests-hf-")
for _var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "TRANSFORMERS_CACHE", "HF_DATASETS_CACHE"):
    os.environ.pop(_var, None)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Several workers share the cores: one compute thread each (and in the jobs they start, which inherit it).
    # torch's default, a thread per core in every process, puts 2 workers x 2 threads on 2 cores and they thrash.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path, monkeypatch):
    """Runs and the token cache go to tmp_path, so tests never see each other's or the user's files."""
    monkeypatch.setenv("LLMLAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("LLMLAB_CACHE_DIR", str(tmp_path / "cache"))
    yield
