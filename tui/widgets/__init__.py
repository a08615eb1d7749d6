"""Small widgets of llmlab's app, one per module."""
