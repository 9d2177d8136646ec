"""Data and measurement: the embedded world, its splits and wordings, task families, the one
judge, and the report card (evals)."""
