"""deepdive's terminal UI: the Textual app and the typer CLI. torch is imported lazily."""
