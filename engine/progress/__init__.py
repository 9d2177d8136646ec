"""A run's progress, one job a module:

- events.py: the event log (``events.jsonl``): writer, follower, ``read_events``;
- state.py: the one reducer every front end folds events with (``RunState``, ``StageState``,
  ``Series``), pure functions of the events;
- watch.py: ``RunWatch``, following a run folder's events file and its lock;
- text.py: what the front ends print: numbers, durations, ETA, a stage's status, plain strings.
"""
