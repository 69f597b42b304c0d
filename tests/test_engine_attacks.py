"""The engine under attack (issue 20): servers and proxies on 127.0.0.1 that misbehave on purpose.

Each test names the promise it checks (README, "One engine" and "Errors"): what a failure says
was sent, that a connection out of step is never reused, that timeouts hold, that nothing leaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator

import httpx
import pytest

from tensorlake_sandbox import (
    PayloadTooLargeError,
    SandboxConnectionError,
    sandbox_client,
)
from tests.closing import close_after_test

PID = 7
Handler = Callable[[socket.socket], None]


class RawServer:
    """A listener on 127.0.0.1 whose every connection is given to ``handler`` in its own thread."""

    def __init__(self, handler: Handler) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self._handler = handler
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            self._handler(conn)

    def stop(self) -> None:
        self.listener.close()
        self._accepting.join(5)
        for thread in self._threads:
            thread.join(5)


@pytest.fixture
def raw_server() -> Iterator[Callable[[Handler], RawServer]]:
    servers: list[RawServer] = []

    def make(handler: Handler) -> RawServer:
        servers.append(RawServer(handler))
        return servers[-1]

    yield make
    from tests.closing import close_all

    close_all()
    for server in servers:
        server.stop()


def read_head(conn: socket.socket) -> tuple[bytes, bytes]:
    """The request head (up to its blank line) and whatever of the body came with it."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            raise ConnectionError("closed before a head")
        data += more
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def reset(conn: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0): the rest of a body cannot be sent."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


# -- an answer sent before the body was read ------------------------------------------------------

BIG = 16 << 20  # far more than the socket buffers hold: the write fails midway


def early_answer(status: bytes) -> Handler:
    """Answer ``status`` on seeing the head, then close at once with the body unread (an RST)."""

    def handler(conn: socket.socket) -> None:
        read_head(conn)
        conn.sendall(b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        reset(conn)

    return handler


def post_both(url: str, body: bytes) -> list[BaseException | int]:
    """POST ``body`` to a stdin path with a sandbox client's sync, then async httpx client."""
    client = close_after_test(sandbox_client(base_url=url, api_key="k", timeout=10))
    path = f"/api/v1/processes/{PID}/stdin"
    results: list[BaseException | int] = []
    try:
        results.append(client.get_httpx_client().post(path, content=body).status_code)
    except Exception as exc:
        results.append(exc)

    async def main() -> None:
        try:
            results.append((await client.get_async_httpx_client().post(path, content=body)).status_code)
        except Exception as exc:
            results.append(exc)
        finally:
            await client.aclose()

    asyncio.run(main())
    return results


def test_an_error_answered_before_the_body_was_read_is_raised_not_lost_to_the_failed_write(raw_server):
    """A proxy answers 413 on seeing a large Content-Length and resets the connection: the 413
    (nothing was written) is what the call raises, as httpx's own transport did, not a write
    failure that may have delivered the bytes."""
    server = raw_server(early_answer(b"413 Payload Too Large"))
    results = post_both(server.url, os.urandom(BIG))
    assert [type(r) for r in results] == [PayloadTooLargeError] * 2, results


def test_a_success_answered_before_the_body_was_read_is_no_delivery(raw_server):
    """A 204 sent before the body was read, then a reset: the body was not all sent, so the call
    fails saying it may have been sent; the 204 never counts as the body's delivery."""
    server = raw_server(early_answer(b"204 No Content"))
    results = post_both(server.url, os.urandom(BIG))
    assert [type(r) for r in results] == [SandboxConnectionError] * 2, results
    assert [r.may_have_been_sent for r in results] == [True, True]  # type: ignore[union-attr]
    assert [type(r.__cause__) for r in results] == [httpx.WriteError] * 2  # type: ignore[union-attr]
