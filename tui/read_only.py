"""Read-only sessions: what a viewer of ``deepdive serve`` may not do, and how it is refused.

A served session is read-only unless the presenter started the server with ``--allow-train``:
no trainer started or stopped, no file written. Actions that would do either ask ``refused``
first; it shows a notice saying why and returns True when the action must not go on.
"""

from __future__ import annotations

from textual.dom import DOMNode

NOTICE = ("This is a read-only session (deepdive serve): {what} is turned off. The presenter "
          "can allow training with `deepdive serve --allow-train`.")


def refused(node: DOMNode, what: str) -> bool:
    """True (after a visible notice) when ``node``'s app is read-only."""
    app = node.app
    if not getattr(app, "read_only", False):
        return False
    app.notify(NOTICE.format(what=what), title="Read-only", severity="warning")
    return True
