"""The offline demos' data, shipped inside the package so an installed llmlab runs `--demo` with no network.

Built by `assets/make_demo_data.py` (stdlib only, fixed seeds, the same bytes every run); read
through `core.DEMO_DATA_DIR`.
"""
