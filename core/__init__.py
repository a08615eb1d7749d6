"""llmlab's engine: pretraining, evaluation, run directories and hardware facts.

Nothing here imports textual; heavy libraries (torch, transformers, datasets) are imported
inside the functions that need them so that `llmlab --help` and the app start quickly.
"""

from __future__ import annotations

from pathlib import Path

__version__ = "0.1.0"

# The repository's bundled sample data (demo corpus, demo MMMLU CSV) lives beside the packages.
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
