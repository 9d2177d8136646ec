"""The command line (`deepdive ...`): a front end beside the app (tui/) over the engine."""
