"""Benchmarks: llmlab's pretraining and evaluation against the usual Hugging Face way, same device."""
