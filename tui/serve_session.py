"""The served side of ``deepdive serve``: a session process that lives exactly as long as its
connection.

``tui.serve_guard`` starts each session with ``TEXTUAL_DRIVER`` pointing at ``SessionDriver``
and ``DEEPDIVE_SERVE_PARENT`` set to the server's pid. Textual's web driver alone keeps a
session alive when its server goes away (stdin at EOF, stdout a broken pipe) and can miss an
exit request that arrives while it starts. Here the session also ends when

- its parent (the server) dies: the kernel's parent-death signal (Linux) and a watch on the
  parent pid (everywhere else, and for the moment before the signal is armed);
- stdin reaches EOF or stdout breaks: the server closed the pipes, so nobody is watching;
- SIGTERM, SIGINT or SIGHUP arrives, or the server sends "quit": the app is asked to exit, and
  if it has not within ``EXIT_GRACE_S`` (a worker busy loading torch, say) the process exits
  without cleanup. A served session has nothing to save.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from typing import Any

from textual import messages
from textual.app import App
from textual.drivers.web_driver import WebDriver

PARENT_ENV = "DEEPDIVE_SERVE_PARENT"
DRIVER = "tui.serve_session:SessionDriver"
EXIT_GRACE_S = 2.0  # from an exit request to a forced exit
PARENT_POLL_S = 0.25  # how often the parent pid is looked at
PR_SET_PDEATHSIG = 1

_exit_lock = threading.Lock()
_exit_armed = False
_watching = False


def hard_exit_later(code: int = 0, after: float = EXIT_GRACE_S) -> None:
    """Exit the process after ``after`` seconds unless it has ended by then (once)."""
    global _exit_armed
    with _exit_lock:
        if _exit_armed:
            return
        _exit_armed = True
    timer = threading.Timer(after, _exit_now, (code,))
    timer.daemon = True
    timer.start()


def _exit_now(code: int) -> None:
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(code)


def served_parent() -> int | None:
    """The server's pid when this process is a served session, else None."""
    try:
        return int(os.environ[PARENT_ENV])
    except (KeyError, ValueError):
        return None


def watch_parent(parent: int | None = None) -> bool:
    """End this process when ``parent`` (default: the server, from the environment) dies.

    Arms the kernel's parent-death signal where there is one (Linux), then checks that the
    parent is still there, and starts a daemon thread that checks again every
    ``PARENT_POLL_S``. Returns False (and does nothing) when there is no parent to watch.
    Call it as early as possible; calling it again is harmless."""
    global _watching
    parent = parent if parent is not None else served_parent()
    if parent is None or _watching:
        return parent is not None
    _watching = True
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # the watch thread below still ends the session, a little later
    if os.getppid() != parent:  # gone before the signal was armed
        _exit_now(0)

    def watch() -> None:
        stop = threading.Event()
        while not stop.wait(PARENT_POLL_S):
            if os.getppid() != parent:
                _exit_now(0)

    threading.Thread(target=watch, name="deepdive-parent-watch", daemon=True).start()
    return True


class SessionDriver(WebDriver):
    """Textual's web driver, bound to the lifetime of the server's connection (see above)."""

    def __init__(self, app: App[Any], **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        watch_parent()
        self._write = self._guarded_write  # os.write to stdout, which may break
        self._loop: asyncio.AbstractEventLoop | None = None

    def _guarded_write(self, data: bytes) -> int:
        try:
            return os.write(self.fileno, data)
        except OSError:  # the server closed our stdout: nobody is watching any more
            self.connection_lost()
            return 0

    def start_application_mode(self) -> None:
        self._loop = asyncio.get_running_loop()
        super().start_application_mode()
        if sys.platform != "win32":
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                self._loop.add_signal_handler(sig, self.request_exit)

    def request_exit(self) -> None:
        """Ask the app to exit (any thread); force the exit if it has not within the grace."""
        hard_exit_later(0)
        loop = self._loop
        if loop is None or loop.is_closed():
            _exit_now(0)
            return
        try:
            loop.call_soon_threadsafe(self._app.post_message, messages.ExitApp())
        except RuntimeError:  # the loop has just closed: the app is ending anyway
            pass

    def connection_lost(self) -> None:
        if not self.exit_event.is_set():
            self.request_exit()

    def run_input_thread(self) -> None:
        super().run_input_thread()
        # The reader ends on stdin EOF (the server closed the pipe) or when the app stops.
        self.connection_lost()

    def on_meta(self, packet_type: str, payload: dict[str, object]) -> None:
        if packet_type == "quit":
            hard_exit_later(0)
        super().on_meta(packet_type, payload)
