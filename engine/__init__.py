"""deepdive's engine: everything that computes. Never imports textual."""
