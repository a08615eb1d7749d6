"""GPT-2 pretraining from scratch: data, tokenization cache, packing, the training loop, reports."""
