"""The engine: one HTTP/1.1 transport (h11 on a socket) under httpx's public transport
interface, and the client class that streams file bodies. Written once: `_sync/_transport.py`
is generated from it; the socket calls that differ are paired in `_transports/_io.py`.

What it promises (an exact "sent / may have been sent", a connection out of step closed, safe
under threads, event loops and fork) and why: README, "One engine".
"""

from __future__ import annotations

import base64
import io
import os
import select
import socket
import ssl
import stat
import threading
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any, BinaryIO, NoReturn

import h11
import httpcore
import httpx

from .._backend import AsyncLock, aread_file
from .._errors import error_for_response, transport_error
from .._transports import _io

READ = 64 * 1024
CHUNK = 1024 * 1024  # a file body is read and sent 1 MiB at a time (half the CPU of 64 KiB)
SMALL_BODY = 64 * 1024  # a BytesIO body up to this size is sent as bytes, a larger one streamed
Origin = tuple[str, str, int]  # scheme, host, port

# The error table: the httpx failure (timeout, error, broken exchange) of each phase. Before
# the request's first byte leaves (the connection, a proxy's tunnel, TLS) nothing was sent.
PHASES = {
    "connect": (httpx.ConnectTimeout, httpx.ConnectError, httpx.ConnectError),
    "write": (httpx.WriteTimeout, httpx.WriteError, httpx.RemoteProtocolError),
    "read": (httpx.ReadTimeout, httpx.ReadError, httpx.RemoteProtocolError),
}


def fail(exc: BaseException, phase: str, request: httpx.Request) -> NoReturn:
    """Raise the package's `SandboxConnectionError` for ``exc`` (its ``__cause__``: the httpx
    error of ``phase``); anything else (Ctrl-C, a cancellation, a bug) is raised as it is."""
    timeout_cls, error_cls, protocol_cls = PHASES[phase]
    if isinstance(exc, httpx.TransportError):
        mapped = exc
    elif isinstance(exc, TimeoutError):  # socket.timeout too
        mapped = timeout_cls(f"{phase} timed out")
    elif isinstance(exc, OSError):  # ssl.SSLError, ConnectionError, gaierror
        mapped = error_cls(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    elif isinstance(exc, h11.ProtocolError):  # a malformed answer, or a close before its end
        who = "the request's body" if isinstance(exc, h11.LocalProtocolError) else "the server"
        mapped = protocol_cls(f"{who} broke the HTTP exchange: {exc}")  # (a body not its length)
    else:
        raise exc
    mapped.request = request
    if mapped is not exc:
        mapped.__cause__ = exc
    raise transport_error(mapped) from mapped


class _AsyncConn:
    """One connection: the socket, its h11 state, TLS through `ssl.SSLObject` on memory buffers.
    Closing it needs no event loop (one left from an earlier ``asyncio.run`` closes like any)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock, self.h11 = sock, h11.Connection(h11.CLIENT)
        self.tls: ssl.SSLObject | None = None
        self._in, self._out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._sending = AsyncLock()  # a websocket's pings and its input: one send at a time
        self.cut: OSError | None = None  # why a write failed
        self._openssl = threading.Lock()  # one thread at a time in the TLS object and its buffers

    @classmethod
    async def open(
        cls, key: Origin, proxy: httpx.URL | None, context: ssl.SSLContext, timeout: float | None
    ) -> _AsyncConn:
        scheme, host, port = key
        async with _io.atimed(timeout):
            where = (proxy.raw_host.decode("ascii"), proxy.port or 80) if proxy else (host, port)
            conn = cls(await _io.aopen_tcp(*where, timeout))
            try:
                if proxy is not None:  # through an http:// proxy: a CONNECT tunnel, TLS inside it
                    await conn._atunnel(host, port, proxy, timeout)
                if scheme == "https":
                    conn.tls = context.wrap_bio(conn._in, conn._out, server_hostname=host)
                    await conn._atls(conn.tls.do_handshake)
            except BaseException:
                conn.close()
                raise
            return conn

    async def _atunnel(self, host: str, port: int, proxy: httpx.URL, timeout: float | None) -> None:
        target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        headers = [("Host", target)]
        if proxy.username:
            login = base64.b64encode(f"{proxy.username}:{proxy.password}".encode()).decode("ascii")
            headers.append(("Proxy-Authorization", f"Basic {login}"))
        ask = self.h11.send(h11.Request(method="CONNECT", target=target, headers=headers))
        await self.write((ask or b"") + (self.h11.send(h11.EndOfMessage()) or b""), timeout)
        answer = await _anext_event(self, timeout)
        status, reason = getattr(answer, "status_code", 0), getattr(answer, "reason", b"no answer")
        if status // 100 != 2:
            said = f"{status or ''} {reason.decode('latin-1')}".strip()
            raise httpx.ConnectError(f"the proxy refused a tunnel to {target}: {said}")
        if self.h11.trailing_data[0]:  # before our TLS hello: not the sandbox's
            raise httpx.ConnectError(f"the proxy sent bytes of its own into the tunnel to {target}")
        self.h11 = h11.Connection(h11.CLIENT)

    async def _atls(self, step: Any) -> Any:
        """Run one TLS step, moving its records to and from the socket until it is done.

        A websocket is read and written at once (threads, on a sync client): OpenSSL and its
        buffers are used under `_openssl` only (never held while waiting), and each step sends the
        records it made itself (records a writer's step made are sent by it, in order)."""
        while True:
            with self._openssl:
                before = self._out.pending
                try:
                    result, done = step(), True
                except ssl.SSLWantReadError:
                    result, done = None, False
                made = self._out.pending > before
            if made:
                await self._aflush()
            if done:
                return result
            data = await _io.arecv(self.sock, READ)
            with self._openssl:
                if data:
                    self._in.write(data)
                else:
                    self._in.write_eof()

    async def _aflush(self) -> None:
        """Send the TLS records made so far, taken in the order they were made."""
        async with self._sending:
            with self._openssl:
                data = self._out.read()
            if data:
                await _io.asendall(self.sock, data)

    async def _asend(self, data: bytes | bytearray) -> None:
        async with self._sending:
            await _io.asendall(self.sock, data)

    async def write(self, data: bytes | bytearray, timeout: float | None) -> None:
        try:
            async with _io.atimed(timeout):
                if self.tls is None:
                    await self._asend(data)
                else:
                    await self._atls(lambda: self.tls.write(data))
        except OSError as exc:
            self.cut = exc  # the socket failed (not the body being sent): an answer may be waiting
            raise

    async def recv(self, max_bytes: int, timeout: float | None = None) -> bytes:
        async with _io.atimed(timeout):
            if self.tls is None:
                return await _io.arecv(self.sock, max_bytes)
            try:
                data: bytes = await self._atls(lambda: self.tls.read(max_bytes))
            except ssl.SSLZeroReturnError:
                return b""
            return data

    def stale(self) -> bool:
        """Anything to read while idle (a close, or bytes nobody asked for): not reusable."""
        try:
            return _io.ready(self.sock, select.POLLIN, 0) or bool(self.tls and self.tls.pending())
        except (OSError, ValueError):
            return True

    def late_records(self) -> bytes | None:
        """TLS records received after a complete answer (in the same read): None for none; their
        bytes, b"" for records that carry none (a close_notify, a ticket, part of a record)."""
        if self.tls is None or not self._in.pending:
            return None
        try:
            return self.tls.read(READ)
        except ssl.SSLError:
            return b""

    def close(self) -> None:
        self.sock.close()


async def _anext_event(conn: _AsyncConn, timeout: float | None) -> Any:
    """The next h11 event of ``conn``, reading the socket as long as h11 needs data."""
    while (event := conn.h11.next_event()) is h11.NEED_DATA:
        conn.h11.receive_data(await conn.recv(READ, timeout))
    return event


# Every transport of this process: in a forked child each starts again with a fresh lock (one that
# another thread held at the fork would never be released) and none of the parent's connections.
_TRANSPORTS: weakref.WeakSet[Any] = weakref.WeakSet()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: [t.forked() for t in list(_TRANSPORTS)])


class AsyncTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over h11; through ``proxy`` (an ``http://`` URL) by a CONNECT tunnel. Its idle
    connections are kept by origin, for one process (a forked child starts with none)."""

    def __init__(self, context: ssl.SSLContext, limits: httpx.Limits, proxy: httpx.URL | None = None):
        self._ssl, self._proxy, self._limits = context, proxy, limits
        self._lock = threading.Lock()
        self._idle: dict[Origin, list[tuple[float, Any]]] = {}
        _TRANSPORTS.add(self)

    def _take(self, key: Origin) -> Any:
        """The newest idle connection to ``key`` fit for a request, or None; one idle too long, or
        with anything to read (a close, bytes nobody asked for), is closed."""
        while True:
            with self._lock:
                if not self._idle.get(key):
                    return None
                since, conn = self._idle[key].pop()
            expiry = self._limits.keepalive_expiry
            if (expiry is None or time.monotonic() - since < expiry) and not conn.stale():
                return conn
            conn.close()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        url, conn, phase = request.url, None, "connect"
        key = (url.scheme, url.raw_host.decode("ascii"), url.port or (443 if url.scheme == "https" else 80))
        try:
            if url.scheme not in ("http", "https"):
                raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
            try:
                head = h11.Request(method=request.method, target=url.raw_path, headers=request.headers.raw)
            except h11.LocalProtocolError as exc:  # a head HTTP cannot carry: refused, not sent
                raise httpx.LocalProtocolError(str(exc)) from exc
            conn = self._take(key) or await _AsyncConn.open(
                key, self._proxy, self._ssl, timeouts.get("connect")
            )
            phase, timeout = "write", timeouts.get("write")
            cut: OSError | None = None  # the server closed while the request was sent
            try:
                held = bytearray(conn.h11.send(head) or b"")  # small pieces joined: one write
                async for chunk in request.stream:  # type: ignore[union-attr]
                    for piece in conn.h11.send_with_data_passthrough(h11.Data(data=chunk)) or ():
                        if len(piece) >= READ:  # a large piece goes alone: never copied
                            if held:
                                await conn.write(held, timeout)
                            await conn.write(piece, timeout)
                            held = bytearray()
                        elif len(held) + len(piece) >= READ:
                            await conn.write(held + piece, timeout)
                            held = bytearray()
                        else:
                            held += piece
                await conn.write(held + (conn.h11.send(h11.EndOfMessage()) or b""), timeout)
            except OSError as exc:
                if isinstance(exc, TimeoutError) or exc is not conn.cut:
                    raise
                cut = exc
            phase, timeout = "read", timeouts.get("read")
            try:
                event = await _anext_event(conn, timeout)
                while isinstance(event, h11.InformationalResponse) and event.status_code != 101:
                    event = await _anext_event(conn, timeout)
            except (OSError, h11.ProtocolError):
                if cut is None:
                    raise
                event = None
            if cut is not None and not (isinstance(event, h11.Response) and event.status_code >= 400):
                phase = "write"  # only an error answered early (a 413 before the body was read) counts
                raise cut
            if not isinstance(event, (h11.Response, h11.InformationalResponse)):
                raise httpx.RemoteProtocolError("the server closed the connection without an answer")
            extensions: dict[str, Any] = {"http_version": b"HTTP/1.1", "reason_phrase": event.reason}
            if isinstance(event, h11.InformationalResponse):  # 101: the socket is the caller's now
                extensions["network_stream"] = _AsyncStream(conn)
                return httpx.Response(101, headers=event.headers.raw_items(), extensions=extensions)
            stream: Any = _AsyncBody(self, conn, key, request, timeout)
            if request.method == "HEAD" or event.status_code in (204, 304):  # ends at its head
                declared = dict(event.headers.raw_items())
                length = declared.get(b"content-length", b"0").strip()
                if event.status_code == 204 and (length != b"0" or b"transfer-encoding" in declared):
                    raise httpx.RemoteProtocolError("HTTP 204 with a body: the connection was out of step")
                stream = httpx.ByteStream(b"".join([chunk async for chunk in stream]))  # checked now
            return httpx.Response(
                event.status_code, headers=event.headers.raw_items(), stream=stream, extensions=extensions
            )
        except BaseException as exc:
            if conn is not None:
                conn.close()
            fail(exc, phase, request)

    def release(self, conn: _AsyncConn, key: Origin) -> None:
        """Back to the pool, unless bytes follow the complete answer (raised) or it cannot be reused."""
        late = conn.late_records()  # over TLS, a smuggled answer may sit in a record of its own
        if conn.h11.trailing_data[0] or late:
            raise httpx.RemoteProtocolError("bytes after a complete answer: the connection was out of step")
        most = self._limits.max_keepalive_connections
        done = conn.h11.our_state is h11.DONE and conn.h11.their_state is h11.DONE and late is None
        with self._lock:
            held = self._idle.setdefault(key, [])
            if done and (most is None or len(held) < most):
                conn.h11.start_next_cycle()
                held.append((time.monotonic(), conn))
                return
        conn.close()

    def _drop(self) -> None:
        with self._lock:
            found, self._idle = self._idle, {}
        for held in found.values():
            for _, conn in held:
                conn.close()

    async def aclose(self) -> None:
        self._drop()

    def forked(self) -> None:
        """In a forked child: closes this process's copies of the parent's sockets (its connections
        live on)."""
        self._lock = threading.Lock()
        self._drop()

    # A client left by an earlier event loop is dropped, not closed: its idle sockets are closed
    # then (no event loop needed) instead of warning when collected.
    __del__ = _drop


class _AsyncBody(httpx.AsyncByteStream):
    """An answer's body as it arrives; the connection goes back to the pool at its end."""

    def __init__(
        self,
        owner: AsyncTransport,
        conn: _AsyncConn,
        key: Origin,
        request: httpx.Request,
        timeout: float | None,
    ):
        self._owner, self._conn, self._key, self._request, self._timeout = owner, conn, key, request, timeout
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            while not isinstance(event := await _anext_event(self._conn, self._timeout), h11.EndOfMessage):
                if not isinstance(event, h11.Data):
                    raise httpx.RemoteProtocolError("the server closed the connection mid-answer")
                yield bytes(event.data)
            self._done = True
            self._owner.release(self._conn, self._key)
        except BaseException as exc:
            self._done = True
            self._conn.close()
            fail(exc, "read", self._request)

    async def aclose(self) -> None:
        if not self._done:  # not read to the end: the connection is out of step
            self._done = True
            self._conn.close()


class _AsyncStream:
    """An upgraded connection (a websocket) as httpx-ws uses it: httpcore's ``network_stream``
    interface and errors."""

    def __init__(self, conn: _AsyncConn) -> None:
        self._conn, self._early = conn, conn.h11.trailing_data[0]

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data, self._early = self._early, b""
        try:
            return data or await self._conn.recv(max_bytes, timeout)
        except OSError as exc:
            raise httpcore.ReadError(str(exc)) from exc

    async def write(self, data: bytes, timeout: float | None = None) -> None:
        try:
            await self._conn.write(data, timeout)
        except OSError as exc:
            raise httpcore.WriteError(str(exc)) from exc

    async def aclose(self) -> None:
        self._conn.close()

    def get_extra_info(self, info: str) -> Any:
        return None


# -- the client's response hooks ----------------------------------------------------------------


async def araise_for_error(answer: httpx.Response) -> None:
    """Tell the call the answer's status (`_io.on_response`); raise an error status as its `SandboxError`."""
    callback = _io.on_response.get()
    if callback is not None:
        callback(answer.status_code)
    if not answer.is_success:
        await answer.aread()
        raise error_for_response(answer)


async def aread_refusal(answer: httpx.Response) -> None:
    if answer.status_code != 101:
        await answer.aread()  # httpx-ws closes the response before raising: keep the error body


# -- file bodies: httpx sends a file only on a sync client, whole; the generated calls pass one ----


def remaining_length(f: BinaryIO) -> int | None:
    """Bytes from the current position to the end, or None when that cannot be known (a pipe)."""
    try:
        st = os.fstat(f.fileno())
        return max(0, st.st_size - f.tell()) if stat.S_ISREG(st.st_mode) else None
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    try:
        if not f.seekable():
            return None
        pos = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(pos)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return max(0, end - pos)


async def aiter_file(f: BinaryIO, length: int | None) -> AsyncIterator[bytes]:
    """Up to ``length`` bytes (all, when None) from ``f``'s position (async: blocking reads in a
    worker thread)."""
    left = length
    while left is None or left > 0:
        chunk = await aread_file(f, CHUNK if left is None else min(CHUNK, left))
        if not chunk:
            break
        if left is not None:
            left -= len(chunk)
        yield chunk


async def awhole_bytes_io(f: io.BytesIO, length: int) -> AsyncIterator[bytes]:
    """The ``length`` bytes at ``f``'s position as one piece, moving past them. A BytesIO made from
    bytes and read from the start gives back that same bytes object: sent without a copy."""
    pos = f.tell()
    data = f.getvalue()
    if pos or len(data) != length:
        data = data[pos : pos + length]
    f.seek(pos + len(data))
    yield data


def file_body(kwargs: dict[str, Any]) -> None:
    """A file-like ``content`` as bytes (a small BytesIO) or streamed from its position: a larger
    BytesIO as one piece, a file in pieces."""
    f: Any = kwargs.get("content")
    if not hasattr(f, "read") or isinstance(f, (bytes, bytearray, memoryview, str)):
        return
    length = remaining_length(f)
    if isinstance(f, io.BytesIO) and length is not None and length <= SMALL_BODY:
        kwargs["content"] = f.read(length)
        return
    whole = isinstance(f, io.BytesIO) and length is not None
    kwargs["content"] = awhole_bytes_io(f, length) if whole else aiter_file(f, length)  # type: ignore[arg-type]
    kwargs["headers"] = httpx.Headers(kwargs.get("headers"))
    if length is not None:
        kwargs["headers"]["Content-Length"] = str(length)


class AsyncClient(httpx.AsyncClient):
    """`httpx.AsyncClient`, with file bodies streamed from their position (its only change)."""

    def build_request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Request:
        file_body(kwargs)
        return super().build_request(method, url, **kwargs)
