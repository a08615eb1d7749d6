"""MMMLU evaluation: batched generation or log-prob scoring, one logged row per question."""
