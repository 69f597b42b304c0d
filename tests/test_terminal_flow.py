"""A terminal whose reader pauses keeps its connection, loses nothing and gets the exit code (issue 21).

The local sandbox here pings every 0.3 s and waits 0.3 s for the answer (the defaults are
20 s and 20 s), so a pause of 2 s is many ping rounds: before the fix the sandbox closed the
paused client with 1011 "keepalive ping timeout" and the program's output was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tensorlake_sandbox import SandboxClient, TerminalClosedError, sandbox_client
from tensorlake_sandbox._async._terminal import aopen_terminal
from tensorlake_sandbox._sync import _terminal as terminal
from tensorlake_sandbox._sync._terminal import attach_terminal, open_terminal
from tensorlake_sandbox.local import _pty_session, create_app
from tensorlake_sandbox.local._runner import ServerThread, bind, make_config


@pytest.fixture(scope="module")
def quick_pings() -> Iterator[SandboxClient]:
    app = create_app(token="t")
    sock = bind("127.0.0.1", 0)
    # Pings every 0.3 s; a pong may take up to 1 s (a loaded machine schedules the client's reader
    # late), far less than the pause below: a reader that stopped answering would be dropped.
    server = ServerThread(make_config(app, ws_ping_interval=0.3, ws_ping_timeout=1.0), sock)
    server.start()
    client = sandbox_client(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", api_key="t")
    try:
        yield client
    finally:
        client.get_httpx_client().close()
        server.stop()


def test_a_paused_reader_keeps_its_connection_and_loses_nothing(
    quick_pings: SandboxClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small client queue, so that the pause reaches the sandbox (kernel buffers hold the rest),
    # and a short stall timeout, which must not close a client that holds back nobody else.
    monkeypatch.setattr(terminal, "QUEUE_FRAMES", 8)
    monkeypatch.setattr(_pty_session, "STALL_TIMEOUT", 0.5)
    script = "yes 0123456789 | head -c 12000000; echo; echo DONE; exit 7"
    with open_terminal(quick_pings, "sh", ["-c", script]) as term:
        time.sleep(3.0)  # the pause under test (not a synchronisation): many ping rounds
        output = b"".join(term)
        assert term.returncode == 7
    assert output.count(b"0123456789") == 12000000 // 11
    assert b"DONE" in output


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 whose connections can be cut at once (a network failure)."""

    def __init__(self, upstream_port: int) -> None:
        self._upstream = upstream_port
        self._socks: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                down, _ = self._listener.accept()
                up = socket.create_connection(("127.0.0.1", self._upstream))
                self._socks += [down, up]
                for a, b in ((down, up), (up, down)):
                    threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)

    def cut(self) -> None:
        for s in self._socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self._listener.close()
        self.cut()


def test_a_dropped_connection_raises_and_leaves_the_program_for_reattaching(
    quick_pings: SandboxClient,
) -> None:
    port = httpx.URL(str(quick_pings.get_httpx_client().base_url)).port
    assert port is not None
    proxy = CuttableProxy(port)
    via_proxy = sandbox_client(base_url=f"http://127.0.0.1:{proxy.port}", api_key="t")
    try:
        with open_terminal(via_proxy, "sh", ["-c", "echo READY; read x; echo got $x; exit 3"]) as term:
            seen = b""
            while b"READY" not in seen:
                seen += term.read(10)
            proxy.cut()
            with pytest.raises(TerminalClosedError) as caught:
                while term.read(10):
                    pass
            assert caught.value.close_code == 1006
            assert any("Terminal.attach" in note for note in caught.value.__notes__)
        # Leaving the block did not kill it: it can be reattached and finished.
        again = attach_terminal(quick_pings, term.session_id, term.token)
        with again:
            again.write("hi\n")
            assert b"got hi" in b"".join(again)
            assert again.returncode == 3
    finally:
        via_proxy.get_httpx_client().close()
        proxy.close()


def test_a_client_that_holds_back_a_reading_one_is_closed_with_1008(
    quick_pings: SandboxClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_pty_session, "STALL_TIMEOUT", 0.5)
    monkeypatch.setattr(terminal, "QUEUE_FRAMES", 8)
    script = "read x; yes 0123456789 | head -c 30000000; echo; echo DONE; exit 4"
    with open_terminal(quick_pings, "sh", ["-c", script]) as stalled:
        with attach_terminal(quick_pings, stalled.session_id, stalled.token) as reader:
            reader.write("go\n")
            output = b"".join(reader)  # the stalled client reads nothing meanwhile
            assert reader.returncode == 4
            assert b"DONE" in output
        with pytest.raises(TerminalClosedError) as caught:
            while stalled.read(10):
                pass
        assert caught.value.close_code == 1008
        stalled.detach()


def test_async_a_dropped_connection_raises_and_leaves_the_program_for_reattaching(
    quick_pings: SandboxClient,
) -> None:
    port = httpx.URL(str(quick_pings.get_httpx_client().base_url)).port
    assert port is not None
    proxy = CuttableProxy(port)
    via_proxy = sandbox_client(base_url=f"http://127.0.0.1:{proxy.port}", api_key="t")

    async def drive() -> tuple[str, str, int | None]:
        async with await aopen_terminal(via_proxy, "sh", ["-c", "echo READY; read x; exit 5"]) as term:
            seen = b""
            while b"READY" not in seen:
                seen += await term.read(10)
            proxy.cut()
            with pytest.raises(TerminalClosedError) as caught:
                while await term.read(10):
                    pass
        return term.session_id, term.token, caught.value.close_code

    try:
        session_id, token, code = asyncio.run(drive())
        assert code == 1006
        with attach_terminal(quick_pings, session_id, token) as again:
            again.write("\n")
            assert again.wait(10) == 5
    finally:
        via_proxy.get_httpx_client().close()
        proxy.close()
