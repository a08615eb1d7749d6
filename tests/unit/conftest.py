"""Fixtures shared by the engine's unit tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def demo_model_cache(tmp_path_factory):
    """A cache folder holding the eval demo's tiny model, built once per module instead of per test."""
    from core.lm import demo as demo_mod

    folder = tmp_path_factory.mktemp("cache")
    demo_mod.ensure_demo_model(folder / demo_mod.DEMO_MODEL_NAME)
    return folder


@pytest.fixture()
def shared_demo_model(demo_model_cache, monkeypatch):
    """Point LLMLAB_CACHE_DIR at the module's demo-model cache (use with pytest.mark.usefixtures)."""
    monkeypatch.setenv("LLMLAB_CACHE_DIR", str(demo_model_cache))
