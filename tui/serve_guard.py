"""The server side of ``deepdive serve``: textual-serve, with sessions that cannot pile up.

textual-serve starts one app process per websocket through ``sh -c`` and, when the connection
goes, only asks the app to quit. A process that misses or ignores that request, or whose
server dies, is left running. Here (``GuardedServer`` / ``SessionService``):

- each session is the app itself, started without a shell in a process group of its own, with
  ``tui.serve_session.SessionDriver`` as its Textual driver (it ends itself when the server
  dies, its pipes close, or it is signalled);
- when a connection closes, at any moment (start-up included), its session is asked to quit,
  then its pipes are closed, then its group gets SIGTERM and at last SIGKILL, and the process
  is reaped: ``stop`` returns only when the process is gone;
- at most ``max_sessions`` sessions run at once; a visitor over the cap is told so and why;
- when the server exits (Ctrl+C, SIGTERM) every session is stopped the same way, and a last
  synchronous sweep at interpreter exit kills any group still there.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import html
import logging
import os
import shlex
import signal
import weakref
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.web_runner import GracefulExit
from textual_serve.app_service import AppService
from textual_serve.server import Server, to_int

from tui.serve_session import DRIVER, PARENT_ENV

log = logging.getLogger("deepdive-serve")

MAX_SESSIONS = 4
QUIT_GRACE_S = 2.0  # from "quit" (and closed pipes) to SIGTERM
TERM_GRACE_S = 2.0  # from SIGTERM to SIGKILL
TRY_AGAIN_LATER = 1013  # websocket close code: the server is full, try later

_live: weakref.WeakSet[SessionService] = weakref.WeakSet()  # for the exit-time sweep


def refusal_text(max_sessions: int) -> str:
    return (f"deepdive serve is full: {max_sessions} session"
            f"{'' if max_sessions == 1 else 's'} already open, the most this server allows "
            "(--max-sessions). Close another tab, or try again in a moment.")


class SessionService(AppService):
    """One served session: its process lives exactly as long as the connection (see above)."""

    def __init__(self, argv: list[str], *, extra_env: dict[str, str] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(shlex.join(argv), **kwargs)
        self.argv = argv
        self.extra_env = extra_env or {}
        self._stopping: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _build_environment(self, width: int = 80, height: int = 24) -> dict[str, str]:
        env = super()._build_environment(width=width, height=height)
        env["TEXTUAL_DRIVER"] = DRIVER
        env[PARENT_ENV] = str(os.getpid())
        env.update(self.extra_env)
        return env

    async def _open_app_process(self, width: int = 80, height: int = 24):
        process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._build_environment(width=width, height=height),
            start_new_session=True,  # its own process group: a signal reaches all of it
        )
        self._process = process
        self._stdin = process.stdin
        _live.add(self)
        return process

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            # the process ended (or its output did): the browser learns the session is over
            with contextlib.suppress(Exception):
                await self.remote_close()

    async def stop(self) -> None:
        """Stop the session; returns once its process has exited and been reaped. Safe to call
        any number of times, from anywhere, at any moment of the session's life."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop())
        await asyncio.shield(self._stopping)

    async def _stop(self) -> None:
        process = self._process
        with contextlib.suppress(Exception):
            await self._download_manager.cancel_app_downloads(app_service_id=self.app_service_id)
        if process is not None and process.returncode is None:
            if self._stdin is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.send_meta({"type": "quit"}), 0.5)
                with contextlib.suppress(Exception):
                    self._stdin.close()  # EOF: the session's driver ends on it too
            if not await _exited(process, QUIT_GRACE_S):
                _signal_group(process, signal.SIGTERM)
                if not await _exited(process, TERM_GRACE_S):
                    _signal_group(process, signal.SIGKILL)
                    await process.wait()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 2.0)
            except BaseException:  # noqa: BLE001 - a reader that failed or hung: done with it
                self._task.cancel()
            self._task = None
        _live.discard(self)


async def _exited(process: asyncio.subprocess.Process, seconds: float) -> bool:
    try:
        await asyncio.wait_for(process.wait(), seconds)
    except asyncio.TimeoutError:
        return False
    return True


def _signal_group(process: asyncio.subprocess.Process, sig: int) -> None:
    # Only while the process is not reaped: its pid (= the group id) cannot have been reused.
    if process.returncode is not None:
        return
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)


@atexit.register
def _sweep() -> None:
    """Last resort at interpreter exit: kill every session group still running."""
    for service in list(_live):
        process = service._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGKILL)


class GuardedServer(Server):
    """A textual-serve ``Server`` whose sessions are ``SessionService``s, capped in number."""

    def __init__(self, argv: list[str], *, max_sessions: int = MAX_SESSIONS,
                 extra_env: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(shlex.join(argv), **kwargs)
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1, got {max_sessions}")
        self.argv = argv
        self.max_sessions = max_sessions
        self.extra_env = extra_env or {}
        self.sessions: set[SessionService] = set()
        self._sockets: set[web.WebSocketResponse] = set()

    @property
    def full(self) -> bool:
        return len(self.sessions) >= self.max_sessions

    async def on_startup(self, app: web.Application) -> None:
        self.console.print(f"Serving {self.command!r} on {self.public_url} "
                           f"(at most {self.max_sessions} sessions at once)", highlight=False)
        self.console.print("[cyan]Press Ctrl+C to quit")

    async def on_shutdown(self, app: web.Application) -> None:
        await self.stop_all()

    async def stop_all(self) -> None:
        """Stop every session (reaping its process) and close every websocket."""
        await asyncio.gather(*(s.stop() for s in list(self.sessions)), return_exceptions=True)
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"server shutting down")

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        if self.full:
            text = html.escape(refusal_text(self.max_sessions))
            return web.Response(status=503, content_type="text/html",
                                text=f"<!doctype html><title>deepdive: full</title><p>{text}</p>",
                                headers={"Retry-After": "30"})
        return await super().handle_index(request)

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        websocket = web.WebSocketResponse(heartbeat=15)
        await websocket.prepare(request)
        if self.full:
            message = refusal_text(self.max_sessions)
            log.warning("refused a visitor: %s", message)
            with contextlib.suppress(Exception):
                await websocket.send_bytes(f"\r\n  {message}\r\n".encode())
                await websocket.close(code=TRY_AGAIN_LATER, message=b"too many sessions")
            return websocket
        width = to_int(request.query.get("width", "80"), 80)
        height = to_int(request.query.get("height", "24"), 24)
        service = SessionService(
            self.argv, extra_env=self.extra_env, write_bytes=websocket.send_bytes,
            write_str=websocket.send_str, close=websocket.close,
            download_manager=self.download_manager, debug=self.debug)
        self.sessions.add(service)  # counted from now until its process is reaped
        self._sockets.add(websocket)
        try:
            await service.start(width, height)
            await self._process_messages(websocket, service)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await websocket.close()
        except Exception as error:  # noqa: BLE001 - one bad session must not stop the server
            log.exception(error)
        finally:
            try:
                await service.stop()
            finally:  # a second cancellation during stop() must not leave it counted
                self.sessions.discard(service)
                self._sockets.discard(websocket)
        return websocket

    async def _process_messages(self, websocket: web.WebSocketResponse,
                                app_service: AppService) -> None:
        # as textual-serve's, but a malformed message is skipped, not the end of the server task
        async for message in websocket:
            if message.type != WSMsgType.TEXT:
                continue
            try:
                envelope = message.json()
                kind, data = envelope[0], envelope[1]
            except (ValueError, TypeError, IndexError, KeyError):
                continue
            if kind == "stdin" and isinstance(data, str):
                await app_service.send_bytes(data.encode("utf-8"))
            elif kind == "resize" and isinstance(data, dict):
                await app_service.set_terminal_size(to_int(str(data.get("width")), 80),
                                                    to_int(str(data.get("height")), 24))
            elif kind == "ping":
                await websocket.send_json(["pong", data])
            elif kind == "blur":
                await app_service.blur()
            elif kind == "focus":
                await app_service.focus()

    def serve(self, debug: bool = False) -> None:
        """Serve until Ctrl+C or SIGTERM; every session is stopped before this returns."""
        self.debug = debug
        self.initialize_logging()
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)

        def request_exit() -> None:
            raise GracefulExit()

        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGINT, request_exit)
            loop.add_signal_handler(signal.SIGTERM, request_exit)
        try:
            web.run_app(self._make_app(), host=self.host, port=self.port, handle_signals=False,
                        loop=loop, print=lambda *args: None, shutdown_timeout=5.0)
        finally:
            _sweep()
