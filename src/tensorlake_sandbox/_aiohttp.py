"""The optional async transport on aiohttp (``sandbox_client(..., async_transport="aiohttp")``).

A standalone ``httpx.AsyncBaseTransport`` over one aiohttp session per event loop. What it
must get right, because the stdin retry rule reads the exception types:

* aiohttp errors map to the httpx exception that says what happened to the bytes: only a
  failure to connect is a ``ConnectError`` / ``ConnectTimeout`` (nothing sent); a drop is
  ``RemoteProtocolError`` or ``ReadError``; a read timeout is ``ReadTimeout``.
* aiohttp has no write timeout, so a server that stops reading a large body would hang
  the request forever: the body is fed through a watchdog that raises
  ``httpx.WriteTimeout`` when one piece takes longer than the write timeout to send.
* A response that breaks framing (a 204 with a body) is refused by ``_http``'s response
  hook, as on the httpx transports, and its connection is aborted here, never reused
  (aiohttp would put it back in its pool and read the stray body as the next answer).
* The session leaves cookies and the Content-Type header to httpx, so requests carry the
  same headers as on the default transport; it never reads proxy settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from typing import Any

import aiohttp
import httpx

from ._http import framing_problem

__all__ = ["SandboxAiohttpTransport"]

# Bodies up to this size go to aiohttp as bytes: its writer buffers them without waiting
# (it drains only past 64 KiB), so no write can stall. Larger bodies go in pieces this
# size, each under the write-timeout watchdog.
_PIECE = 64 * 1024

# httpx's own default pool limits.
_DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)

# The socket transports of the connections the current request used (see `_Connector`).
_used: contextvars.ContextVar[list[asyncio.BaseTransport] | None] = contextvars.ContextVar(
    "tensorlake_aiohttp_used", default=None
)


class _Connector(aiohttp.TCPConnector):
    """Notes each connection's socket, so that a write timeout can abort it.

    On a cancelled request aiohttp closes the connection gracefully, and an asyncio
    transport waits for its unsent buffer before closing: with a server that stopped
    reading, the socket would stay open for good.
    """

    async def connect(self, req: Any, traces: Any, timeout: aiohttp.ClientTimeout) -> Any:
        conn = await super().connect(req, traces, timeout)
        used = _used.get()
        if used is not None and conn.transport is not None:
            used.append(conn.transport)
        return conn


# aiohttp failure -> httpx exception, first match wins (subclasses before their bases). The
# retry rule reads these types: only the first two mean "nothing of the request was sent".
_ERROR_MAP: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], type[Exception]], ...] = (
    # Raised only while connecting (DNS, TCP, TLS, proxy): no byte of the request was sent.
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    # Raised around connector.connect() (pool wait, connect, sock_connect): nothing sent.
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError, httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError, httpx.TimeoutException),
    # Connected, the request (partly) sent, then the server closed without a full answer.
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.ReadError),
    (aiohttp.ClientHttpProxyError, httpx.ProxyError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),  # a malformed response
    ((aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError), httpx.UnsupportedProtocol),
    # A reset, broken pipe or other OS error on an established connection.
    (aiohttp.ClientConnectionError, httpx.ReadError),
    (aiohttp.ClientError, httpx.TransportError),
)


def _httpx_error(exc: BaseException) -> Exception | None:
    """The httpx exception for an aiohttp failure; None for anything else (left alone)."""
    try:
        message = str(exc) or type(exc).__name__
    except Exception:  # a half-built aiohttp error can fail to format itself
        message = type(exc).__name__
    for aiohttp_types, httpx_type in _ERROR_MAP:
        if isinstance(exc, aiohttp_types):
            return httpx_type(message)
    return None


@contextlib.contextmanager
def _mapped_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        mapped = _httpx_error(exc)
        if mapped is None:
            raise
        raise mapped from exc


async def _watched(body: bytes | AsyncIterable[bytes], deadline: asyncio.Timeout, seconds: float) -> Any:
    """Yield ``body`` in pieces; each must be sent within ``seconds`` or ``deadline`` fires.

    aiohttp asks for the next piece only after writing (and draining) the previous one, so
    the time between two requests for a piece is the time one piece took to send. Time
    spent waiting for ``body`` itself (a slow file) is not counted.
    """
    loop = asyncio.get_running_loop()

    async def chunks() -> AsyncIterator[bytes]:
        if isinstance(body, bytes):
            yield body
        else:
            async for chunk in body:
                yield chunk

    async for chunk in chunks():
        view = memoryview(chunk)
        for start in range(0, len(view), _PIECE):
            deadline.reschedule(loop.time() + seconds)
            yield view[start : start + _PIECE]
            deadline.reschedule(None)


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped_errors():
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        with _mapped_errors():
            self._response.release()
            await self._response.wait_for_close()


class SandboxAiohttpTransport(httpx.AsyncBaseTransport):
    """An httpx async transport on one aiohttp session, created in the loop that first uses it."""

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | str | bool = True,
        cert: Any = None,
        trust_env: bool = True,
        limits: httpx.Limits = _DEFAULT_LIMITS,
    ) -> None:
        self.ssl_context = httpx.create_ssl_context(verify=verify, cert=cert, trust_env=trust_env)
        self.limits = limits
        self.session: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None:
            limit = self.limits.max_connections
            connector = _Connector(
                keepalive_timeout=self.limits.keepalive_expiry,
                ssl=self.ssl_context,
                limit=0 if limit is None else limit,
            )
            self.session = aiohttp.ClientSession(
                connector=connector,
                # httpx keeps the cookies and sets the headers; aiohttp adds none of its own.
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("Content-Type",),
            )
        return self.session

    async def aclose(self) -> None:
        if self.session is not None:
            await self.session.close()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        session = self._session()
        timeout = request.extensions.get("timeout", {})
        write_timeout = timeout.get("write")

        body: bytes | AsyncIterable[bytes] | None
        try:
            body = request.content or None
        except httpx.RequestNotRead:
            body = request.stream  # type: ignore[assignment]
            request.headers.pop("transfer-encoding", None)  # aiohttp chunks when no length is set

        # Armed only while a piece of a large body is being sent (see `_watched`).
        watchdog = asyncio.timeout(None)
        used: list[asyncio.BaseTransport] = []
        token = _used.set(used)
        try:
            async with watchdog:
                data: Any = body
                if write_timeout is not None and body is not None and not _small(body):
                    data = _watched(body, watchdog, write_timeout)
                with _mapped_errors():
                    response = await session.request(
                        method=request.method,
                        url=str(request.url),
                        headers=request.headers,
                        data=data,
                        allow_redirects=False,
                        auto_decompress=False,
                        compress=False,
                        proxy=None,
                        timeout=aiohttp.ClientTimeout(
                            sock_connect=timeout.get("connect"),
                            sock_read=timeout.get("read"),
                            connect=timeout.get("pool"),
                        ),
                        server_hostname=request.extensions.get("sni_hostname"),
                    )
        except TimeoutError as exc:
            if watchdog.expired():
                _abort(used)
                raise httpx.WriteTimeout(f"sending the request body took over {write_timeout} s") from exc
            raise
        finally:
            _used.reset(token)
        if framing_problem(response.status, httpx.Headers(response.raw_headers)) is not None:
            # aiohttp already put the connection back in its pool (an empty body is complete
            # at once) and would read the stray body as the next answer: kill it. The
            # response hook in _http then fails the call, as on the httpx transports.
            _abort(used)

        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if response.reason:
            extensions["reason_phrase"] = response.reason.encode()
        return httpx.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_ResponseStream(response),
            request=request,
            extensions=extensions,
        )


def _abort(transports: list[asyncio.BaseTransport]) -> None:
    for transport in transports:
        if isinstance(transport, asyncio.WriteTransport):
            transport.abort()


def _small(body: bytes | AsyncIterable[bytes]) -> bool:
    return isinstance(body, bytes) and len(body) <= _PIECE
