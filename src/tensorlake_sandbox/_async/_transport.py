"""The one HTTP/1.1 transport for one I/O mode, written once (`_sync/_transport.py` is generated
from it); also the client class that streams file bodies, its response hooks and the wrapper
that maps another transport's failures. The shared pieces: `tensorlake_sandbox._transports._h11`.
"""

from __future__ import annotations

import io
import ssl
from collections.abc import AsyncIterator
from typing import Any, BinaryIO

import h11
import httpcore
import httpx

from .._backend import aread_file
from .._errors import error_for_response, transport_error
from .._transports._bodies import CHUNK, adapt_file_body, whole_piece
from .._transports._h11 import (
    _READ,
    _after_message,
    _AsyncConn,
    _Batch,
    _h11_request,
    _has_body,
    _Idle,
    _Origin,
    _origin,
    _phase_timeout,
    _reraise,
    _response,
    _upgraded,
    tell,
)

__all__ = ["AsyncClient", "AsyncMapped", "AsyncTransport", "aiter_file", "awhole_bytes_io"]


async def _anext_event(conn: _AsyncConn, timeout: float | None) -> Any:
    """The next h11 event of ``conn``, reading the socket as long as h11 needs data."""
    while True:
        event = conn.h11.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.h11.receive_data(await conn.recv(_READ, timeout))


class AsyncTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over h11, behind httpx's transport interface (see `tensorlake_sandbox._transports._h11`)."""

    def __init__(self, ssl_context: ssl.SSLContext, limits: httpx.Limits) -> None:
        self._ssl = ssl_context
        self._idle = _Idle(limits)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        head = _h11_request(request)
        origin = _origin(request.url)
        conn = self._idle.take(origin)
        if conn is None:
            try:
                conn = await _AsyncConn.open(origin, self._ssl, _phase_timeout(request, "connect"))
            except Exception as exc:
                _reraise(exc, "connect", request)
        phase, timeout = "write", _phase_timeout(request, "write")
        try:
            batch = _Batch(conn.h11)
            for piece in batch.add(head):
                await conn.write(piece, timeout)
            async for chunk in request.stream:  # type: ignore[union-attr]
                for piece in batch.add(h11.Data(data=chunk)):
                    await conn.write(piece, timeout)
            for piece in batch.add(h11.EndOfMessage()):
                await conn.write(piece, timeout)
            phase, timeout = "read", _phase_timeout(request, "read")
            event = await _anext_event(conn, timeout)
            while isinstance(event, h11.InformationalResponse) and event.status_code != 101:
                event = await _anext_event(conn, timeout)
            if isinstance(event, h11.InformationalResponse):  # 101: the socket is the caller's now
                return _upgraded(event, _AsyncStream(conn))
            if not isinstance(event, h11.Response):
                raise httpx.RemoteProtocolError("the server closed the connection without an answer")
            if _has_body(request, event):
                return _response(event, _AsyncBody(self, conn, origin, request))
            # 204, 304, HEAD: the answer ends at its head, so bytes after it are caught now
            if not isinstance(await _anext_event(conn, 0), h11.EndOfMessage):
                raise httpx.RemoteProtocolError("a bodiless answer with a body")
            self.release(conn, origin, request)
            return _response(event, httpx.ByteStream(b""))
        except BaseException as exc:
            conn.close()
            _reraise(exc, phase, request)

    def release(self, conn: _AsyncConn, origin: _Origin, request: httpx.Request) -> None:
        if not _after_message(conn.h11, request) or not self._idle.put(origin, conn):
            conn.close()

    async def aclose(self) -> None:
        for conn in self._idle.drain():
            conn.close()

    def __del__(self) -> None:
        # A client left behind by an earlier event loop is dropped, not closed: its idle
        # sockets are closed here (no event loop needed) instead of warning when collected.
        for conn in self._idle.drain():
            conn.close()


class _AsyncBody(httpx.AsyncByteStream):
    """An answer's body as it arrives; the connection goes back to the pool at its end."""

    def __init__(self, owner: AsyncTransport, conn: _AsyncConn, origin: _Origin, request: httpx.Request):
        self._owner, self._conn, self._origin, self._request = owner, conn, origin, request
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn, request = self._conn, self._request
        try:
            while True:
                event = await _anext_event(conn, _phase_timeout(request, "read"))
                if isinstance(event, h11.Data):
                    yield bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    self._done = True
                    self._owner.release(conn, self._origin, request)
                    return
                else:
                    raise httpx.RemoteProtocolError("the server closed the connection mid-answer")
        except BaseException as exc:
            self._done = True
            conn.close()
            _reraise(exc, "read", request)

    async def aclose(self) -> None:
        if not self._done:  # not read to the end: the connection is out of step
            self._done = True
            self._conn.close()


class _AsyncStream:
    """An upgraded connection (a websocket), as httpx-ws reads and writes it: httpcore's
    ``network_stream`` interface and errors."""

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


# -- answers: status errors in one response hook ------------------------------------------------


async def araise_for_error(response: httpx.Response) -> None:
    tell(response)
    if not response.is_success:
        await response.aread()
        raise error_for_response(response)


async def aread_refusal(response: httpx.Response) -> None:
    if response.status_code != 101:
        await response.aread()  # httpx-ws closes the response before raising: keep the error body


# -- failures of another transport (httpx's, a user's) become SandboxErrors here ----------------


class AsyncMapped(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.TransportError as exc:
            raise transport_error(exc) from exc
        response.stream = _AsyncMappedStream(response.stream)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class _AsyncMappedStream(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield chunk
        except httpx.TransportError as exc:
            raise transport_error(exc) from exc

    async def aclose(self) -> None:
        await self._stream.aclose()


# -- file bodies ---------------------------------------------------------------------------------


async def aiter_file(f: BinaryIO, length: int | None) -> AsyncIterator[bytes]:
    """Yield at most ``length`` bytes (all, when None) from ``f``'s current position (async:
    blocking reads run in a worker thread)."""
    left = length
    while left is None or left > 0:
        chunk = await aread_file(f, CHUNK if left is None else min(CHUNK, left))
        if not chunk:
            break
        if left is not None:
            left -= len(chunk)
        yield chunk


async def awhole_bytes_io(f: io.BytesIO, length: int) -> AsyncIterator[bytes]:
    """The ``length`` bytes at ``f``'s position as one piece (`whole_piece`: no copy)."""
    yield whole_piece(f, length)


class AsyncClient(httpx.AsyncClient):
    """`httpx.AsyncClient`, with file bodies streamed from their position (its only change)."""

    def build_request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Request:
        adapt_file_body(kwargs, aiter_file, awhole_bytes_io)
        return super().build_request(method, url, **kwargs)
