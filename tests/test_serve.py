"""`deepdive serve` cannot be exhausted: a served session lives exactly as long as its
connection (closed or dropped at any moment, start-up included), ends with its server (killed
or stopped), and the server caps the sessions it runs at once.

Each test starts a real server on 127.0.0.1 (a free port) in a subprocess, talks to it with
aiohttp's websocket client, and finds the session processes it started by a marker in their
environment (/proc). Every wait is bounded in time; all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

aiohttp = pytest.importorskip("aiohttp")
pytest.importorskip("textual_serve")
if not Path("/proc/self/environ").exists():
    pytest.skip("finding session processes needs /proc", allow_module_level=True)

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def marked(mark: str) -> list[int]:
    """Pids of live processes (zombies excluded) whose environment carries the marker."""
    needle = f"DEEPDIVE_TEST_MARK={mark}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle not in f.read():
                    continue
            with open(f"/proc/{entry}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            found.append(int(entry))
    return found


def wait_until(check, seconds: float, step: float = 0.1):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


class Served:
    def __init__(self, proc: subprocess.Popen, port: int, mark: str):
        self.proc, self.port, self.mark = proc, port, mark

    def sessions(self) -> list[int]:
        return [p for p in marked(self.mark) if p != self.proc.pid]

    @property
    def ws_url(self) -> str:
        return f"http://{HOST}:{self.port}/ws?width=80&height=24"


@pytest.fixture
def serve() -> Iterator:
    started: list[Served] = []

    def start(*args: str) -> Served:
        port, mark = free_port(), uuid.uuid4().hex
        env = dict(os.environ, DEEPDIVE_TEST_MARK=mark, PYTHONPATH=str(ROOT))
        proc = subprocess.Popen(
            [sys.executable, "-m", "deepdive.cli", "serve", "--host", HOST, "--port", str(port),
             *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        served = Served(proc, port, mark)
        started.append(served)

        def listening() -> bool:
            try:
                socket.create_connection((HOST, port), timeout=0.2).close()
                return True
            except OSError:
                return proc.poll() is not None  # died: stop waiting, fail below

        wait_until(listening, 60)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        return served

    yield start
    for served in started:  # whatever a test left: the server, then any session
        if served.proc.poll() is None:
            served.proc.kill()
            served.proc.wait(10)
        for pid in marked(served.mark):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


async def visit(url: str, leave_after: float, abort: bool) -> None:
    """Open the session's websocket, say the terminal size, leave after `leave_after` s:
    cleanly (a close frame) or by dropping the TCP connection."""
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(url)
        await ws.send_json(["resize", {"width": 80, "height": 24}])
        await asyncio.sleep(leave_after)
        if abort:
            ws._response.connection.transport.abort()  # no close frame, no FIN: a reset
        else:
            await ws.close()


async def hold(url: str, seconds: float) -> bytes:
    """Stay connected for `seconds` (or until the server closes); what the server sent."""
    got: list[bytes] = []
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(url)
        await ws.send_json(["resize", {"width": 80, "height": 24}])
        try:
            await asyncio.wait_for(received(ws, got), seconds)
        except asyncio.TimeoutError:
            pass
        await ws.close()
    return b"".join(got)


async def received(ws, into: list[bytes]) -> None:
    """Collect the binary (terminal) messages until the server closes the websocket."""
    async for message in ws:
        if message.type == aiohttp.WSMsgType.BINARY:
            into.append(message.data)


def test_sessions_dropped_during_start_up_leave_no_process(serve):
    served = serve("--max-sessions", "8")
    # 6 visitors leave while their sessions start: half with a close frame, half by a reset
    drops = [(0.05 * i, i % 2 == 1) for i in range(6)]

    async def main() -> None:
        await asyncio.gather(*(visit(served.ws_url, t, abort) for t, abort in drops))

    asyncio.run(asyncio.wait_for(main(), 30))
    left = wait_until(lambda: not served.sessions(), 20) or served.sessions()
    assert left is True, f"{len(left)} session processes still running: {left}"
    assert served.proc.poll() is None  # the server itself is fine
    # and it still serves: a session that starts and is left after it is up also ends
    asyncio.run(asyncio.wait_for(visit(served.ws_url, 3.0, abort=True), 30))
    assert wait_until(lambda: not served.sessions(), 20), served.sessions()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
def test_sessions_end_with_their_server(serve, how):
    served = serve()

    async def connect_then_stop_the_server() -> None:
        async with aiohttp.ClientSession() as session:
            sockets = [await session.ws_connect(served.ws_url) for _ in range(2)]
            for ws in sockets:
                await ws.send_json(["resize", {"width": 80, "height": 24}])
            await asyncio.sleep(3.0)  # sessions up (or well on their way)
            assert served.sessions()  # started
            served.proc.send_signal(how)
            await asyncio.sleep(1.0)
            for ws in sockets:  # the browser tabs stay open meanwhile
                await ws.close()

    asyncio.run(asyncio.wait_for(connect_then_stop_the_server(), 30))
    served.proc.wait(15)
    assert wait_until(lambda: not served.sessions(), 15), (
        f"after {how.name} of the server, sessions remain: {served.sessions()}")


def test_the_server_caps_its_sessions_and_says_so(serve):
    served = serve("--max-sessions", "1")

    async def main() -> tuple[bytes, int | None, int, str]:
        async with aiohttp.ClientSession() as session:
            first = asyncio.ensure_future(hold(served.ws_url, 4.0))
            await asyncio.sleep(0.5)  # the first session is counted from its connection on
            ws = await session.ws_connect(served.ws_url)
            parts: list[bytes] = []
            await asyncio.wait_for(received(ws, parts), 10)
            refusal, code = b"".join(parts), ws.close_code
            async with session.get(f"http://{HOST}:{served.port}/") as page:
                status, text = page.status, await page.text()
            await first
            return refusal, code, status, text

    refusal, code, status, text = asyncio.run(asyncio.wait_for(main(), 40))
    assert b"full" in refusal and b"--max-sessions" in refusal, refusal
    assert code == 1013  # try again later
    assert status == 503 and "full" in text
    # once the first visitor has gone (its process reaped), a new one gets a session again
    assert wait_until(lambda: not served.sessions(), 15)
    assert wait_until(lambda: index_status(served.port) == 200, 10)
    got = asyncio.run(asyncio.wait_for(hold(served.ws_url, 4.0), 30))
    assert b"full" not in got


def index_status(port: int) -> int:
    import urllib.request
    from urllib.error import HTTPError

    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/", timeout=5) as page:
            return page.status
    except HTTPError as e:
        return e.code


def test_served_sessions_run_the_app_read_only_unless_allowed():
    from deepdive.commands.demo import build_server
    from tui.serve_guard import SessionService

    server = build_server(port=8124)
    assert server.host == HOST and server.max_sessions == 4
    assert server.argv[-4:] == ["demo", "--run", "tiny", "--read-only"]
    assert "--read-only" not in build_server(allow_train=True).argv
    service = SessionService(server.argv, write_bytes=None, write_str=None, close=None,
                             download_manager=None)
    env = service._build_environment()
    assert env["TEXTUAL_DRIVER"] == "tui.serve_session:SessionDriver"
    assert env["DEEPDIVE_SERVE_PARENT"] == str(os.getpid())
