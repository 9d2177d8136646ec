"""A run's progress: the event log (events.jsonl), the reducer that folds it, the file watcher."""
