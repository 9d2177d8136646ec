"""`python -m tui` is the `deepdive` command (for a checkout without the console script)."""

from tui.cli import main

if __name__ == "__main__":
    main()
