"""llmlab's Textual app: shows and steers jobs that run in the core engine."""
