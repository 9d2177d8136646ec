"""Training: one shared loop (loop.py) and a trainer per stage (pretrain, sft, rl), chained by
pipeline.py into a run folder; presets.py holds the numbers, distributed.py the torchrun glue."""
