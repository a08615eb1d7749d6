"""Scoring rules for generated answers: SQuAD EM/F1, numeric answers, votes across runs."""
