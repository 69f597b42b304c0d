"""What the transport's two halves cannot share: the socket calls, in pairs that `scripts/unasync.py`
matches by name (``aopen_tcp`` / ``open_tcp``: async on the running loop's public ``sock_*``
calls, sync on a blocking socket), and the one context variable both tell each answer to.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import select
import socket
import time
from collections.abc import Callable, Iterator

# Told the status of each answer of the current call (a stdin write counts its bytes here, the
# moment the sandbox confirms them: nothing that follows can lose the count).
on_response: contextvars.ContextVar[Callable[[int], None] | None] = contextvars.ContextVar(
    "tensorlake_on_response", default=None
)


async def aopen_tcp(host: str, port: int, timeout: float | None) -> socket.socket:
    loop = asyncio.get_running_loop()  # ``timeout``: the caller's `atimed` bounds the whole open
    error: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, address in await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await loop.sock_connect(sock, address)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
        except BaseException:
            sock.close()
            raise
    raise error


def open_tcp(host: str, port: int, timeout: float | None) -> socket.socket:
    sock = socket.create_connection((host, port), timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(None)  # blocking: each call waits in `_wait` (a websocket's two threads share it)
    return sock


async def arecv(sock: socket.socket, max_bytes: int) -> bytes:
    return await asyncio.get_running_loop().sock_recv(sock, max_bytes)


def recv(sock: socket.socket, max_bytes: int) -> bytes:
    _wait(sock, select.POLLIN)
    return sock.recv(max_bytes)


async def asendall(sock: socket.socket, data: bytes | bytearray) -> None:
    await asyncio.get_running_loop().sock_sendall(sock, data)


def sendall(sock: socket.socket, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        _wait(sock, select.POLLOUT)
        with contextlib.suppress(BlockingIOError):  # never blocks past the deadline in send itself
            view = view[sock.send(view, socket.MSG_DONTWAIT) :]


def atimed(timeout: float | None) -> asyncio.Timeout:
    return asyncio.timeout(timeout)


# Sync: the end of the innermost `timed` block, in this thread; each socket call waits for what is
# left of it (not `socket.settimeout`: a sync websocket's reader and writer threads share a socket).
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("tensorlake_deadline", default=None)


@contextlib.contextmanager
def timed(timeout: float | None) -> Iterator[None]:
    outer = _deadline.get()
    end = None if timeout is None else time.monotonic() + timeout
    token = _deadline.set(end if outer is None else outer if end is None else min(outer, end))
    try:
        yield
    finally:
        _deadline.reset(token)


def _wait(sock: socket.socket, event: int) -> None:
    end = _deadline.get()
    if not ready(sock, event, None if end is None else max(0.0, end - time.monotonic())):
        raise TimeoutError("timed out")


def ready(sock: socket.socket, event: int, seconds: float | None) -> bool:
    """Whether ``sock`` is ready for ``event`` (``select.POLLIN``, ``POLLOUT``) within ``seconds``
    (None: as long as it takes). poll, not select(): select refuses a descriptor above 1023."""
    poller = select.poll()
    poller.register(sock, event)
    return bool(poller.poll(None if seconds is None else seconds * 1000))
