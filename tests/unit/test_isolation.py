"""The suite never sees the machine's own Hugging Face cache, so an offline test cannot find real weights."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def test_the_suite_has_its_own_empty_hugging_face_cache():
    import huggingface_hub.constants as hub

    home = Path(os.environ["HF_HOME"])
    assert home.name.startswith("llmlab-tests-hf-") and home.parent == Path(tempfile.gettempdir())
    assert Path(hub.HF_HUB_CACHE).is_relative_to(home)
    assert not list(Path(hub.HF_HUB_CACHE).glob("models--*"))
