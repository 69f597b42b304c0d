"""The httpx plumbing under a `SandboxClient`: file bodies streamed, errors mapped, transports.

Every request of a `SandboxClient` goes through the two httpx client classes here, on
every transport (httpx sync, httpx async, aiohttp). They

* turn a file body into a stream from its read position (httpx would send a file only on
  the sync path, and take its length from the whole file);
* raise the typed `SandboxError` for every non-2xx response in one response hook, before
  the generated parser sees it;
* refuse a response that breaks HTTP framing (a 204 with a body): its connection is
  closed, never reused out of step, and the call fails as "may have been sent";
* turn every httpx transport failure into a `SandboxConnectionError` or
  `SandboxTimeoutError` (which still are the httpx exception they replace), also while a
  streamed body is read;
* never send a loopback request through a proxy (the key would go to the proxy);
* send a small, plain request through the fast path (`_native`, pyreqwest) when the client
  has nothing for it that only httpx does (a proxy, custom TLS, hooks, cookies ...).
"""

from __future__ import annotations

import contextvars
import io
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, NamedTuple

import httpx

from . import _native
from ._bodies import aiter_file, awhole_bytes_io, is_file_body, iter_file, remaining_length, whole_bytes_io
from ._errors import SandboxError, error_for_status, transport_error
from ._httpx_speedups import SetCookieOnlyCookies, speed_up
from ._urls import is_loopback_host

__all__ = ["async_http", "framing_problem", "on_response", "sync_http"]

# httpx keeps 20 idle connections by default: with more concurrent async writes than that, it
# closes and reopens connections all the time. Keep every connection it may open alive (issue 12).
ASYNC_POOL_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=100, keepalive_expiry=5.0)

# An in-memory body this small is sent as bytes: cheaper per call than a stream. A larger
# one is streamed: httpx keeps a request (and a bytes body) in reference cycles until the
# garbage collector runs, while a finished stream lets go of its data at once.
_SMALL_BODY = 64 * 1024


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


def _error(response: httpx.Response) -> SandboxError:
    err = error_for_status(response.status_code, response.content, path=response.request.url.path)
    err.response = response  # type: ignore[attr-defined]
    return err


# Told the status of each well-framed response of the current call (a stdin write counts its
# bytes here, the moment the sandbox confirms them: nothing that follows can lose the count).
on_response: contextvars.ContextVar[Callable[[int], None] | None] = contextvars.ContextVar(
    "tensorlake_on_response", default=None
)


def framing_problem(status: int, headers: httpx.Headers) -> str | None:
    """Why a response's framing cannot be trusted, or None. A 1xx/204/304 has no body (RFC 9110)."""
    return _framing(status, headers.get("content-length"), "transfer-encoding" in headers)


def _framing(status: int, content_length: str | None, chunked: bool) -> str | None:
    declares_body = content_length is not None and content_length.strip() != "0"
    if (status < 200 or status in (204, 304)) and (declares_body or chunked):
        return f"HTTP {status} with a body (framing broken; the connection was closed)"
    return None


def _raise_for_error(response: httpx.Response) -> None:
    _raise_for(response, framing_problem(response.status_code, response.headers))


def _raise_for(response: httpx.Response, problem: str | None) -> None:
    """Raise what ``response`` means (its framing ``problem``, or its status); tell its status."""
    if problem is not None:
        response.close()  # unread: the connection is dropped, not put back out of step
        raise httpx.RemoteProtocolError(problem, request=response.request)
    _tell(response)
    if not response.is_success:
        response.read()
        raise _error(response)


async def _araise_for_error(response: httpx.Response) -> None:
    await _araise_for(response, framing_problem(response.status_code, response.headers))


async def _araise_for(response: httpx.Response, problem: str | None) -> None:
    if problem is not None:
        await response.aclose()
        raise httpx.RemoteProtocolError(problem, request=response.request)
    _tell(response)
    if not response.is_success:
        await response.aread()
        raise _error(response)


def _tell(response: httpx.Response) -> None:
    callback = on_response.get()
    if callback is not None:
        callback(response.status_code)


class _Mapped:
    """The one place where httpx transport failures become `SandboxError`s (``with _mapped():``).

    A class, not a generator: it is entered on every request.
    """

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, httpx.TransportError) and not isinstance(exc, SandboxError):
            raise transport_error(exc) from exc


_MAPPED = _Mapped()


def _mapped() -> _Mapped:
    return _MAPPED


class _MappedStream(httpx.SyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        with _mapped():
            yield from self._stream

    def close(self) -> None:
        with _mapped():
            self._stream.close()


class _AsyncMappedStream(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _mapped():
            async for chunk in self._stream:
                yield chunk

    async def aclose(self) -> None:
        with _mapped():
            await self._stream.aclose()


# Headers the fast path leaves to pyreqwest (it frames the body and names the host) or drops:
# no Accept-Encoding, so the sandbox answers uncompressed (httpx would decode either way).
_NATIVE_SKIP = frozenset({"host", "content-length", "transfer-encoding", "accept-encoding"})


def _fast_path_applies(client: httpx.Client | httpx.AsyncClient) -> bool:
    """Whether this client's plain requests may skip httpx (see `_native`): nothing it would
    apply on the way (a proxy from the environment, CA files from it) only httpx knows."""
    if not _native.available():
        return False
    base = client.base_url
    if client._transport_for_url(base) is not client._transport:
        return False  # a proxy (from the environment) is mounted for the sandbox's URL
    return not (
        base.scheme == "https"
        and client.trust_env
        and (os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR"))
    )


class _Plain:
    """The fast-path decision and request building shared by both clients (no I/O here)."""

    _merged_urls: dict[str, tuple[httpx.URL, str]]
    _merged_base: httpx.URL | None = None
    _seen_headers: list[Any] | None = None
    _seen_auth: object = None
    _client_headers: list[tuple[str, str]]

    def _merged(self, client: httpx.Client | httpx.AsyncClient, url: str) -> tuple[httpx.URL, str]:
        """``url`` merged with the base URL, once per path (issue 12), and as a string."""
        merged = self._merged_urls.get(url)
        if merged is None or self._merged_base is not client._base_url:
            if len(self._merged_urls) >= 1024 or self._merged_base is not client._base_url:
                self._merged_urls.clear()
                self._merged_base = client._base_url
            full = client._merge_url(url)
            merged = self._merged_urls[url] = (full, str(full))
        return merged

    def _small_plain(
        self, client: httpx.Client | httpx.AsyncClient, method: str, url: object, kwargs: dict[str, Any]
    ) -> bool:
        """A request the fast path sends exactly as httpx would; ``kwargs`` may get its file body read.

        Only requests with a body of 1 byte to 64 KiB (see `_native` for why), as bytes or a
        small `io.BytesIO`, and nothing else for httpx to build.
        """
        if not isinstance(url, str) or method.upper() not in _native.BODY_METHODS or client.cookies:
            return False
        if kwargs.get("timeout", httpx.USE_CLIENT_DEFAULT) is not httpx.USE_CLIENT_DEFAULT:
            return False  # a per-call timeout: httpx applies it phase by phase
        if any(k not in ("content", "headers") and v not in (None, {}) for k, v in kwargs.items()):
            return False  # json, params, files, cookies, auth ...: httpx builds those
        content = kwargs.get("content")
        if type(content) is io.BytesIO:  # one read; put back when too large
            data = content.read(_native.SMALL_BODY + 1)
            if len(data) > _native.SMALL_BODY:
                content.seek(-len(data), io.SEEK_CUR)
                return False
            kwargs["content"] = data
            return len(data) > 0
        return type(content) is bytes and 0 < len(content) <= _native.SMALL_BODY

    def _fast_plan(
        self, client: httpx.Client | httpx.AsyncClient, method: str, url: object, kwargs: dict[str, Any]
    ) -> _Plan | None:
        """The fast path's request, or None to let httpx send it."""
        if not (_native.available() and self._small_plain(client, method, url, kwargs)):
            return None
        headers = self._native_headers(client, kwargs.get("headers"))
        if headers is None:
            return None
        full, full_str = self._merged(client, url)  # type: ignore[arg-type]
        return _Plan(method.upper(), full, full_str, headers, kwargs["content"])

    @staticmethod
    def _fast_response(
        client: httpx.Client | httpx.AsyncClient, plan: _Plan, answer: _native.Answer
    ) -> tuple[httpx.Response, str | None]:
        """The answer as an `httpx.Response`, and its framing problem (see `framing_problem`).

        The few headers that matter are found in one pass over pyreqwest's list (its names
        are lower case), not looked up one by one in the response's `httpx.Headers`.
        """
        status, headers = answer[0], answer[1]
        length: str | None = None
        chunked = encoded = cookie = False
        for name, value in headers:
            if name == "content-length":
                length = value
            elif name == "transfer-encoding":
                chunked = True
            elif name == "content-encoding":
                encoded = True
            elif name == "set-cookie":
                cookie = True
        response = _native_response(plan.method, plan.url, plan.headers, answer, encoded)
        if cookie:  # as httpx would (the sandbox sets none)
            client.cookies.extract_cookies(response)
        return response, _framing(status, length, chunked)

    def _native_headers(
        self, client: httpx.Client | httpx.AsyncClient, headers: Any
    ) -> list[tuple[str, str]] | None:
        """The headers httpx would send (less `_NATIVE_SKIP`), or None to let httpx send it.

        The client's own headers and the key are worked out once, and again whenever the
        client's headers or auth are changed.
        """
        if self._seen_headers != client._headers._list or self._seen_auth is not client._auth:
            probe = httpx.Request("GET", client.base_url, headers=client.headers)
            if client._auth is not None:  # the generated BearerAuth: sets one header, needs no response
                flow = client._auth.sync_auth_flow(probe)
                next(flow)
                flow.close()
            self._client_headers = [(k, v) for k, v in probe.headers.multi_items() if k not in _NATIVE_SKIP]
            self._seen_headers = list(client._headers._list)
            self._seen_auth = client._auth
        if not headers:
            return self._client_headers
        if type(headers) is not dict or not all(
            type(k) is str and type(v) is str for k, v in headers.items()
        ):
            return None
        own = {k.lower(): v for k, v in headers.items()}
        merged = [(k, own.pop(k) if k in own else v) for k, v in self._client_headers]
        return [*merged, *((k, v) for k, v in own.items() if k not in _NATIVE_SKIP)]


class _Plan(NamedTuple):
    """A request the fast path will send: what `_native` needs, and what the answer is built from."""

    method: str
    url: httpx.URL
    url_str: str
    headers: list[tuple[str, str]]
    content: bytes

    def send_args(self) -> tuple[str, str, list[tuple[str, str]], bytes, Callable[[], httpx.Request]]:
        return (
            self.method,
            self.url_str,
            self.headers,
            self.content,
            lambda: _rebuilt(self.method, self.url, self.headers),
        )


class _NativeResponse(httpx.Response):
    """An `httpx.Response` for a fast-path answer; its ``request`` is built only if asked for."""

    _lazy: tuple[str, httpx.URL, list[tuple[str, str]]] | None = None

    @property
    def request(self) -> httpx.Request:
        if self._request is None and self._lazy is not None:
            self._request = _rebuilt(*self._lazy)
        return super().request

    @request.setter
    def request(self, value: httpx.Request) -> None:
        self._request = value


def _rebuilt(method: str, url: httpx.URL, headers: list[tuple[str, str]]) -> httpx.Request:
    return httpx.Request(method, url, headers=headers)


def _native_response(
    method: str, url: httpx.URL, headers: list[tuple[str, str]], answer: _native.Answer, encoded: bool
) -> httpx.Response:
    status, response_headers, body = answer
    response = _NativeResponse(status, headers=response_headers, stream=httpx.ByteStream(body))
    response._lazy = (method, url, headers)
    if encoded:
        response.read()  # decoded, as httpx would
    else:  # what read() ends with, without its generators (measurable on a small request)
        response._content = body
        response._num_bytes_downloaded = len(body)
        response.is_stream_consumed = response.is_closed = True
    return response


class _SyncHTTP(_Plain, httpx.Client):
    def __init__(self, *, fast_path: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Per-request savings found by profiling a small write (issue 12; _httpx_speedups).
        self._cookies = SetCookieOnlyCookies(self._cookies)
        speed_up(self._transport)
        self._merged_urls = {}
        self._fast_path = fast_path and _fast_path_applies(self)
        self._native: _native.SyncNative | None = None  # made on first use (see _native)

    def request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        plan = self._fast_plan(self, method, url, kwargs) if self._fast_path else None
        if plan is not None:
            native = self._native
            if native is None:
                native = self._native = _native.SyncNative(self.timeout)
            try:
                with _mapped():
                    response, problem = self._fast_response(self, plan, native.send(*plan.send_args()))
                    _raise_for(response, problem)
                    return response
            except _native.NotSendable:
                pass  # httpx sends it, and says what is wrong with it
        return super().request(method, url, **kwargs)

    def build_request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Request:
        _adapt_file_body(kwargs, iter_file, whole_bytes_io)
        if isinstance(url, str):
            url = self._merged(self, url)[0]
        return super().build_request(method, url, **kwargs)

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        with _mapped():
            response = super().send(request, **kwargs)
        response.stream = _MappedStream(response.stream)
        return response

    def close(self) -> None:
        native, self._native = self._native, None
        if native is not None:
            native.close()
        super().close()


class _AsyncHTTP(_Plain, httpx.AsyncClient):
    def __init__(self, *, fast_path: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._merged_urls = {}
        self._fast_path = fast_path and _fast_path_applies(self)
        self._native: _native.AsyncNative | None = None  # made in the event loop, on first use

    async def request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Response:
        plan = self._fast_plan(self, method, url, kwargs) if self._fast_path else None
        if plan is not None:
            native = self._native
            if native is None:
                native = self._native = _native.AsyncNative(self.timeout)
            try:
                with _mapped():
                    response, problem = self._fast_response(self, plan, await native.send(*plan.send_args()))
                    await _araise_for(response, problem)
                    return response
            except _native.NotSendable:
                pass  # httpx sends it, and says what is wrong with it
        return await super().request(method, url, **kwargs)

    def build_request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Request:
        _adapt_file_body(kwargs, aiter_file, awhole_bytes_io)
        return super().build_request(method, url, **kwargs)

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        with _mapped():
            response = await super().send(request, **kwargs)
        response.stream = _AsyncMappedStream(response.stream)
        return response

    async def aclose(self) -> None:
        native, self._native = self._native, None
        if native is not None:
            await native.aclose()
        await super().aclose()


def _with_hook(kwargs: dict[str, Any], hook: Callable[[httpx.Response], Any]) -> dict[str, Any]:
    """``kwargs`` with ``hook`` as the first response hook (the user's, if any, run after it).

    A loopback base URL also gets a mount of its own, with no proxy: httpx would otherwise
    send it (and the key) to a proxy named in HTTP_PROXY / ALL_PROXY.
    """
    kwargs = dict(kwargs)
    user_hooks = kwargs.pop("event_hooks", None) or {}
    kwargs["event_hooks"] = {
        "request": list(user_hooks.get("request", [])),
        "response": [hook, *user_hooks.get("response", [])],
    }
    base = httpx.URL(kwargs["base_url"])
    if is_loopback_host(base.host):
        # None: the client's own transport (no proxy); a host pattern outranks every proxy's.
        kwargs["mounts"] = {**(kwargs.get("mounts") or {}), f"all://{base.netloc.decode('ascii')}": None}
    return kwargs


def sync_http(kwargs: dict[str, Any], fast_path: bool = False) -> httpx.Client:
    """The sync httpx client for ``AuthenticatedClient.httpx_client_kwargs()``."""
    return _SyncHTTP(fast_path=fast_path, **_with_hook(kwargs, _raise_for_error))


def async_http(kwargs: dict[str, Any], transport: str, fast_path: bool = False) -> httpx.AsyncClient:
    """The async httpx client; on ``transport="aiohttp"`` it sends through aiohttp."""
    kwargs = _with_hook(kwargs, _araise_for_error)
    kwargs.setdefault("limits", ASYNC_POOL_LIMITS)
    if transport == "aiohttp":
        from ._aiohttp import SandboxAiohttpTransport

        options = {k: kwargs[k] for k in ("verify", "cert", "trust_env", "limits") if k in kwargs}
        kwargs["transport"] = SandboxAiohttpTransport(**options)
    return _AsyncHTTP(fast_path=fast_path, **kwargs)
