"""The one HTTP/1.1 transport for one I/O mode: `_async/_transport.py` is the source,
`_sync/_transport.py` is generated from it (scripts/unasync.py).

What it promises, and the pieces both halves share, are in `tensorlake_sandbox._transports._h11`.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any

import h11
import httpcore
import httpx

from .._transports._h11 import (
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
)

__all__ = ["AsyncTransport"]


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
            event = await conn.next_event(timeout)
            while isinstance(event, h11.InformationalResponse) and event.status_code != 101:
                event = await conn.next_event(timeout)
            if isinstance(event, h11.InformationalResponse):  # 101: the socket is the caller's now
                return _upgraded(event, _AsyncStream(conn))
            if not isinstance(event, h11.Response):
                raise httpx.RemoteProtocolError("the server closed the connection without an answer")
            if _has_body(request, event):
                return _response(event, _AsyncBody(self, conn, origin, request))
            # 204, 304, HEAD: the answer ends at its head, so bytes after it are caught now
            if not isinstance(await conn.next_event(0), h11.EndOfMessage):
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
                event = await conn.next_event(_phase_timeout(request, "read"))
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
