"""Tokens: byte-level BPE training, tokenizers (a run's own and the reference encodings), the
chat format."""
