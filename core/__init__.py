"""llmlab's engine: pretraining, evaluation, run directories and hardware facts.

Nothing here imports textual; heavy libraries (torch, transformers, datasets) are imported
inside the functions that need them so that `llmlab --help` and the app start quickly.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__version__ = "0.1.0"

# The demos' bundled data (corpora, exam, SQuAD and math questions): package data inside core/, so a
# wheel installs it too. Wheels install unzipped, so the files are read in place as plain paths.
DEMO_DATA_DIR = Path(str(files("core.demo_data")))
