"""Screens pushed over the tabs: help, quit, a report, one question, one run, two runs compared."""
