"""The language-model layer every kind that loads a model goes through: finding the model and its
tokenizer (hub id, folder, llmlab run folder, demo model), dtype and device, LoRA adapters (one, or
several over one loaded base), and batched generation with its batch planning."""
