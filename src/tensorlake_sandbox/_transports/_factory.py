"""The one client factory: every connection the package opens is made by `make_client`.

REST calls of the generated functions, SSE follows, streamed stdin, terminal websockets and
the CLI all get their `httpx.Client` / `httpx.AsyncClient` here, from one settings object (a
`SandboxClient`: URL, key, timeouts, ``httpx_args``). The rules live here once:

* **Transport**: `_transport`'s (websocket upgrades included), whose failures say exactly
  whether the request may have left. httpx's own transport is used only for what it alone
  does: a proxy, HTTP/2. ``httpx_args["transport"]`` replaces either.
* **Proxies**: a loopback base URL never goes through a proxy (the key would go to it); any
  other follows ``httpx_args["proxy"]`` or, with ``trust_env``, the environment
  (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``).
* **Trust**: one `ssl.SSLContext` from httpx's rules (``verify=``, ``cert=``, else
  ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``, else certifi) for every request.
* **Errors**: every transport failure, also while a body is read, becomes the
  `SandboxConnectionError` / `SandboxTimeoutError` of `_errors.transport_error`; every non-2xx
  answer the typed `SandboxStatusError`, in one response hook, before a parser sees it.
* **File bodies** are streamed from their read position, with the right length, on both
  clients (httpx sends a file only on the sync one, with the whole file's length).
"""

from __future__ import annotations

import contextvars
import io
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Literal, overload
from urllib.request import getproxies, proxy_bypass

import httpx

from tensorlake_api_client.client import AuthenticatedClient

from .._async._transport import AsyncTransport
from .._errors import error_for_status, transport_error
from .._sync._transport import SyncTransport
from .._urls import is_loopback_host
from ._bodies import aiter_file, awhole_bytes_io, is_file_body, iter_file, remaining_length, whole_bytes_io

__all__ = ["LIMITS", "make_client", "on_response"]

# Keep every connection that concurrent calls open alive (32 writers: 32 connections, no churn).
LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=100, keepalive_expiry=5.0)

# httpx_args that choose the transport rather than the client.
_TRANSPORT_ARGS = ("verify", "cert", "trust_env", "http1", "http2", "limits", "proxy", "mounts", "transport")

# An in-memory body this small is sent as bytes; a larger one is streamed (a finished stream
# lets go of its data at once, a bytes body stays in httpx's reference cycles until collected).
_SMALL_BODY = 64 * 1024

# Told the status of each answer of the current call (a stdin write counts its bytes here, the
# moment the sandbox confirms them: nothing that follows can lose the count).
on_response: contextvars.ContextVar[Callable[[int], None] | None] = contextvars.ContextVar(
    "tensorlake_on_response", default=None
)


@overload
def make_client(
    settings: AuthenticatedClient, *, is_async: Literal[False], websocket: bool = ...
) -> httpx.Client: ...
@overload
def make_client(
    settings: AuthenticatedClient, *, is_async: Literal[True], websocket: bool = ...
) -> httpx.AsyncClient: ...
def make_client(
    settings: AuthenticatedClient, *, is_async: bool, websocket: bool = False
) -> httpx.Client | httpx.AsyncClient:
    """The httpx client for ``settings``; ``websocket=True`` for one that opens websockets only."""
    kwargs = settings.httpx_client_kwargs()
    opts = {k: kwargs.pop(k) for k in _TRANSPORT_ARGS if k in kwargs}
    base = httpx.URL(kwargs["base_url"])
    loopback = is_loopback_host(base.host)
    context = httpx.create_ssl_context(
        verify=opts.get("verify", True), cert=opts.get("cert"), trust_env=opts.get("trust_env", True)
    )
    limits = opts.get("limits", LIMITS)
    proxy = None if loopback else _proxy(base, opts)
    transport: Any = opts.get("transport")
    if transport is None and (proxy is not None or opts.get("http2")):
        own = httpx.AsyncHTTPTransport if is_async else httpx.HTTPTransport
        transport = own(verify=context, limits=limits, http2=bool(opts.get("http2")), proxy=proxy)
    elif transport is None:
        transport = (AsyncTransport if is_async else SyncTransport)(context, limits)
    mounts = dict(opts.get("mounts") or {})
    if loopback:  # None: the client's own transport; a host pattern outranks any other mount
        mounts[f"all://{base.netloc.decode('ascii')}"] = None
    user_hooks = kwargs.pop("event_hooks", None) or {}
    if websocket:
        first: Any = _aread_refusal if is_async else _read_refusal
        kwargs["follow_redirects"] = False
    else:
        first = _araise_for_error if is_async else _raise_for_error
    hooks = {
        "request": list(user_hooks.get("request", [])),
        "response": [first, *user_hooks.get("response", [])],
    }
    if not isinstance(transport, (SyncTransport, AsyncTransport)):  # ours raises the package's errors
        transport = _AsyncMapped(transport) if is_async else _SyncMapped(transport)
    cls = _AsyncClient if is_async else _Client
    return cls(**kwargs, transport=transport, mounts=mounts, trust_env=False, event_hooks=hooks)


def _proxy(base: httpx.URL, opts: dict[str, Any]) -> Any:
    if "proxy" in opts:
        return opts["proxy"]
    if not opts.get("trust_env", True):
        return None
    proxies = getproxies()
    url = proxies.get(base.scheme) or proxies.get("all")
    return url if url and not proxy_bypass(base.host) else None


# -- answers: status errors in one response hook ------------------------------------------------


def _tell(response: httpx.Response) -> None:
    callback = on_response.get()
    if callback is not None:
        callback(response.status_code)


def _error(response: httpx.Response) -> Exception:
    return error_for_status(
        response.status_code, response.content, path=response.request.url.path, response=response
    )


def _raise_for_error(response: httpx.Response) -> None:
    _tell(response)
    if not response.is_success:
        response.read()
        raise _error(response)


async def _araise_for_error(response: httpx.Response) -> None:
    _tell(response)
    if not response.is_success:
        await response.aread()
        raise _error(response)


def _read_refusal(response: httpx.Response) -> None:
    if response.status_code != 101:
        response.read()  # httpx-ws closes the response before raising: keep the error body


async def _aread_refusal(response: httpx.Response) -> None:
    if response.status_code != 101:
        await response.aread()


# -- failures of another transport (httpx's, a user's) become SandboxErrors here ----------------


class _SyncMapped(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = self._inner.handle_request(request)
        except httpx.TransportError as exc:
            raise transport_error(exc) from exc
        response.stream = _MappedStream(response.stream)
        return response

    def close(self) -> None:
        self._inner.close()


class _AsyncMapped(httpx.AsyncBaseTransport):
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


class _MappedStream(httpx.SyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._stream
        except httpx.TransportError as exc:
            raise transport_error(exc) from exc

    def close(self) -> None:
        self._stream.close()


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


def _adapt_file_body(
    kwargs: dict[str, Any],
    iterate: Callable[[Any, int | None], Any],
    whole: Callable[[io.BytesIO, int], Any],
) -> None:
    """Turn a file-like ``content`` into bytes (small BytesIO) or a stream from its position.

    A larger `io.BytesIO` is streamed as one piece (``whole``: no copy), a file in pieces
    (``iterate``).
    """
    content = kwargs.get("content")
    if not is_file_body(content):
        return
    length = remaining_length(content)
    if isinstance(content, io.BytesIO) and length is not None:
        if length <= _SMALL_BODY:
            kwargs["content"] = content.read(length)
            return
        stream = whole(content, length)
    else:
        stream = iterate(content, length)
    headers = httpx.Headers(kwargs.get("headers"))
    if length is not None:
        headers["Content-Length"] = str(length)
    kwargs["content"] = stream
    kwargs["headers"] = headers


class _Client(httpx.Client):
    """`httpx.Client`, with file bodies streamed from their position (its only change)."""

    def build_request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Request:
        _adapt_file_body(kwargs, iter_file, whole_bytes_io)
        return super().build_request(method, url, **kwargs)


class _AsyncClient(httpx.AsyncClient):
    """`httpx.AsyncClient`, with file bodies streamed from their position (its only change)."""

    def build_request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Request:
        _adapt_file_body(kwargs, aiter_file, awhole_bytes_io)
        return super().build_request(method, url, **kwargs)
