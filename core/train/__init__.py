"""The one training loop (loop.py) that pretraining and fine-tuning both run, and what it asks of a kind."""
