"""The one HTTP/1.1 transport under every `SandboxClient` request: h11 on a socket, sync and async.

What both halves share: the HTTP rules, the error table by phase, the idle pool and the socket
class; the transports are written once in `_async/_transport.py`. What they promise (an exact
``may_have_been_sent``, a connection out of step closed, safe under threads, event loops and
fork) and why: README, "One engine: how the transport was chosen".
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn

import h11
import httpx

from .._errors import transport_error

_READ = 64 * 1024
_Origin = tuple[bytes, bytes, int]


def _origin(url: httpx.URL) -> _Origin:
    port = url.port or (443 if url.scheme == "https" else 80)
    return url.raw_scheme, url.raw_host, port


def _phase_timeout(request: httpx.Request, phase: str) -> float | None:
    timeout: dict[str, float | None] = request.extensions.get("timeout", {})
    return timeout.get(phase)


def _h11_request(request: httpx.Request) -> h11.Request:
    """The request's head; refused (nothing sent) when h11 or the scheme cannot carry it."""
    try:
        if request.url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {request.url.scheme!r}", request=request)
        try:
            return h11.Request(
                method=request.method, target=request.url.raw_path, headers=request.headers.raw
            )
        except h11.LocalProtocolError as exc:
            raise httpx.LocalProtocolError(str(exc), request=request) from exc
    except httpx.TransportError as exc:
        _reraise(exc, "connect", request)


def _response(event: h11.Response, stream: Any) -> httpx.Response:
    return httpx.Response(
        event.status_code,
        headers=event.headers.raw_items(),
        stream=stream,
        extensions={"http_version": b"HTTP/1.1", "reason_phrase": event.reason},
    )


def _upgraded(event: h11.InformationalResponse, stream: Any) -> httpx.Response:
    """A 101 answer: its connection is handed over as httpcore's ``network_stream`` extension,
    the interface httpx-ws (the terminal's websocket) reads and writes through."""
    return httpx.Response(
        101,
        headers=event.headers.raw_items(),
        extensions={"http_version": b"HTTP/1.1", "reason_phrase": event.reason, "network_stream": stream},
    )


def _after_message(conn: h11.Connection, request: httpx.Request) -> bool:
    """Whether ``conn`` may carry another request; raises if bytes follow a complete response."""
    if conn.trailing_data[0]:
        raise httpx.RemoteProtocolError(
            "bytes after a complete response: the connection was out of step and is closed",
            request=request,
        )
    if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
        conn.start_next_cycle()
        return True
    return False


def _has_body(request: httpx.Request, event: h11.Response) -> bool:
    """False for an answer that ends at its head (204, 304, HEAD); raises when such an answer
    announces a body anyway (its bytes would be taken for the next answer on the connection)."""
    if request.method != "HEAD" and event.status_code not in (204, 304):
        return True
    headers = dict(event.headers.raw_items())
    if event.status_code == 204 and (
        headers.get(b"content-length", b"0").strip() != b"0" or b"transfer-encoding" in headers
    ):
        raise httpx.RemoteProtocolError(
            f"HTTP {event.status_code} with a body: the connection was out of step and is closed",
            request=request,
        )
    return False


class _Batch:
    """The request's bytes as socket writes: small pieces joined into one write (a small request
    is one write), a large piece written as it is (a 2 MiB chunk is never copied)."""

    def __init__(self, conn: h11.Connection) -> None:
        self._conn = conn
        self._held: list[bytes] = []
        self._size = 0

    def add(self, event: h11.Request | h11.Data | h11.EndOfMessage) -> list[bytes]:
        writes: list[bytes] = []
        for piece in self._conn.send_with_data_passthrough(event) or ():
            if len(piece) >= _READ:
                writes += self._flush()
                writes.append(piece)
            elif piece:
                self._held.append(piece)
                self._size += len(piece)
        if self._size >= _READ or isinstance(event, h11.EndOfMessage):
            writes += self._flush()
        return writes

    def _flush(self) -> list[bytes]:
        held, self._held, self._size = self._held, [], 0
        return [b"".join(held)] if held else []


# -- answers: the status of each, told to the current call; error statuses raised -------------

# Told the status of each answer of the current call (a stdin write counts its bytes here, the
# moment the sandbox confirms them: nothing that follows can lose the count).
on_response: contextvars.ContextVar[Callable[[int], None] | None] = contextvars.ContextVar(
    "tensorlake_on_response", default=None
)


def tell(response: httpx.Response) -> None:
    callback = on_response.get()
    if callback is not None:
        callback(response.status_code)


# -- error table: which httpx exception a failure is, by the phase it happened in ----------------

_PHASES: dict[str, tuple[type[httpx.TransportError], type[httpx.TransportError]]] = {
    "connect": (httpx.ConnectTimeout, httpx.ConnectError),
    "write": (httpx.WriteTimeout, httpx.WriteError),
    "read": (httpx.ReadTimeout, httpx.ReadError),
}


def _mapped(exc: BaseException, phase: str, request: httpx.Request) -> httpx.TransportError | None:
    """The httpx exception for ``exc``, raised in ``phase``; None for anything else (raised as is:
    httpx's own errors, Ctrl-C, a cancellation, a bug)."""
    timeout_cls, error_cls = _PHASES[phase]
    if isinstance(exc, TimeoutError):  # socket.timeout too
        return timeout_cls(f"{phase} timed out", request=request)
    if isinstance(exc, OSError):  # ssl.SSLError, ConnectionError, gaierror
        return error_cls(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, request=request)
    if isinstance(exc, h11.ProtocolError):  # a malformed answer, or a close before its end
        return httpx.RemoteProtocolError(f"the server broke the HTTP exchange: {exc}", request=request)
    return None


def _reraise(exc: BaseException, phase: str, request: httpx.Request) -> NoReturn:
    """Raise what ``exc`` means: the package's `SandboxConnectionError` for the httpx exception
    of its phase (its ``__cause__``; the socket's own error is that one's)."""
    mapped = exc if isinstance(exc, httpx.TransportError) else _mapped(exc, phase, request)
    if mapped is None:
        raise exc
    if mapped is not exc:
        mapped.__cause__ = exc
    raise transport_error(mapped) from mapped


class _Idle:
    """Idle connections by origin, for one process (a forked child starts empty)."""

    def __init__(self, limits: httpx.Limits) -> None:
        self._max = limits.max_keepalive_connections
        self._expiry = limits.keepalive_expiry
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._idle: dict[_Origin, list[tuple[float, Any]]] = {}

    def take(self, origin: _Origin) -> Any:
        """The newest idle connection to ``origin`` that is fit for a request, or None.

        Connections idle too long, or with anything to read (a close, or bytes nobody asked
        for), are closed.
        """
        while True:
            with self._lock:
                if self._pid != os.getpid():  # forked: the parent's sockets are not ours to use
                    self._pid, self._idle = os.getpid(), {}
                held = self._idle.get(origin)
                if not held:
                    return None
                since, conn = held.pop()
            if (self._expiry is None or time.monotonic() - since < self._expiry) and not conn.stale():
                return conn
            conn.close()

    def put(self, origin: _Origin, conn: Any) -> bool:
        with self._lock:
            held = self._idle.setdefault(origin, [])
            if self._pid != os.getpid() or (self._max is not None and len(held) >= self._max):
                return False
            held.append((time.monotonic(), conn))
            return True

    def drain(self) -> list[Any]:
        with self._lock:
            found, self._idle = self._idle, {}
        return [c for held in found.values() for _, c in held]


# -- sync -------------------------------------------------------------------------------------


class _Socket:
    """What both connections share: the socket, its h11 state, the idle checks, the close.
    (Reading the next h11 event is written once, in `_async/_transport.py`.)"""

    sock: socket.socket
    h11: h11.Connection
    tls: ssl.SSLObject | None = None

    def stale(self) -> bool:
        """Anything to read while idle (a close, or bytes nobody asked for): not reusable."""
        try:
            return bool(select.select([self.sock], [], [], 0)[0]) or bool(self.tls and self.tls.pending())
        except (OSError, ValueError):
            return True

    def close(self) -> None:
        self.sock.close()


class _Conn(_Socket):
    """A blocking socket; TLS through `ssl.SSLSocket`. The same calls as `_AsyncConn`."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.h11 = h11.Connection(h11.CLIENT)
        self._sending = threading.Lock()  # a websocket's pings and its input: one send at a time

    @classmethod
    def open(cls, origin: _Origin, context: ssl.SSLContext, timeout: float | None) -> _Conn:
        scheme, host, port = origin
        sock = socket.create_connection((host.decode("ascii"), port), timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == b"https":
                sock = context.wrap_socket(sock, server_hostname=host.decode("ascii"))
        except BaseException:
            sock.close()
            raise
        return cls(sock)

    def write(self, data: bytes, timeout: float | None) -> None:
        with self._sending:
            self.sock.settimeout(timeout)
            self.sock.sendall(data)

    def recv(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.sock.settimeout(timeout)
        return self.sock.recv(max_bytes)


# -- async ------------------------------------------------------------------------------------


class _AsyncConn(_Socket):
    """A non-blocking socket driven by the running loop's public ``sock_*`` calls; TLS through
    `ssl.SSLObject` on memory buffers. The socket is ours: closing it needs no event loop (a
    connection left from an earlier ``asyncio.run`` is closed like any other)."""

    def __init__(self, sock: socket.socket, tls: ssl.SSLObject | None) -> None:
        self.sock = sock
        self.tls = tls
        self.h11 = h11.Connection(h11.CLIENT)
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._sending = asyncio.Lock()  # a websocket's pings and its input: one send at a time

    @classmethod
    async def open(cls, origin: _Origin, context: ssl.SSLContext, timeout: float | None) -> _AsyncConn:
        async with asyncio.timeout(timeout):
            return await cls._open(origin, context)

    @classmethod
    async def _open(cls, origin: _Origin, context: ssl.SSLContext) -> _AsyncConn:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        info = await loop.getaddrinfo(host.decode("ascii"), port, type=socket.SOCK_STREAM)
        error: OSError = OSError(f"no address for {host.decode('ascii')}")
        for family, kind, proto, _, address in info:
            sock = socket.socket(family, kind, proto)
            try:
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                await loop.sock_connect(sock, address)
                break
            except OSError as exc:
                sock.close()
                error = exc
            except BaseException:
                sock.close()
                raise
        else:
            raise error
        conn = cls(sock, None)
        if scheme == b"https":
            conn.tls = context.wrap_bio(conn._in, conn._out, server_hostname=host.decode("ascii"))
            try:
                await conn._tls_step(conn.tls.do_handshake)
            except BaseException:
                sock.close()
                raise
        return conn

    async def _tls_step(self, step: Any) -> Any:
        loop = asyncio.get_running_loop()
        while True:
            try:
                result = step()
            except ssl.SSLWantReadError:
                result = None
            else:
                if self._out.pending:
                    await self._send(self._out.read())
                return result
            if self._out.pending:
                await self._send(self._out.read())
            data = await loop.sock_recv(self.sock, _READ)
            if data:
                self._in.write(data)
            else:
                self._in.write_eof()

    async def _send(self, data: bytes) -> None:
        async with self._sending:
            await asyncio.get_running_loop().sock_sendall(self.sock, data)

    async def write(self, data: bytes, timeout: float | None) -> None:
        async with asyncio.timeout(timeout):
            if self.tls is None:
                await self._send(data)
            else:
                await self._tls_step(lambda: self.tls.write(data))

    async def recv(self, max_bytes: int, timeout: float | None = None) -> bytes:
        async with asyncio.timeout(timeout):
            if self.tls is None:
                return await asyncio.get_running_loop().sock_recv(self.sock, max_bytes)
            try:
                data: bytes = await self._tls_step(lambda: self.tls.read(max_bytes))
            except ssl.SSLZeroReturnError:
                return b""
            return data
