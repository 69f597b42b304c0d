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
* never send a loopback request through a proxy (the key would go to the proxy).
"""

from __future__ import annotations

import contextlib
import contextvars
import io
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx

from ._bodies import aiter_file, is_file_body, iter_file, remaining_length
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


def _adapt_file_body(kwargs: dict[str, Any], iterate: Callable[[Any, int | None], Any]) -> None:
    """Turn a file-like ``content`` into bytes (small BytesIO) or a stream from its position."""
    content = kwargs.get("content")
    if not is_file_body(content):
        return
    length = remaining_length(content)
    if isinstance(content, io.BytesIO) and length is not None and length <= _SMALL_BODY:
        kwargs["content"] = content.read(length)
        return
    headers = httpx.Headers(kwargs.get("headers"))
    if length is not None:
        headers["Content-Length"] = str(length)
    kwargs["content"] = iterate(content, length)
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
    if (status < 200 or status in (204, 304)) and (
        headers.get("content-length", "0").strip() != "0" or "transfer-encoding" in headers
    ):
        return f"HTTP {status} with a body (framing broken; the connection was closed)"
    return None


def _raise_for_error(response: httpx.Response) -> None:
    problem = framing_problem(response.status_code, response.headers)
    if problem is not None:
        response.close()  # unread: the connection is dropped, not put back out of step
        raise httpx.RemoteProtocolError(problem, request=response.request)
    _tell(response)
    if not response.is_success:
        response.read()
        raise _error(response)


async def _araise_for_error(response: httpx.Response) -> None:
    problem = framing_problem(response.status_code, response.headers)
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


@contextlib.contextmanager
def _mapped() -> Iterator[None]:
    """The one place where httpx transport failures become `SandboxError`s."""
    try:
        yield
    except httpx.TransportError as exc:
        if isinstance(exc, SandboxError):
            raise
        raise transport_error(exc) from exc


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


class _SyncHTTP(httpx.Client):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Per-request savings found by profiling a small write (issue 12; _httpx_speedups).
        self._cookies = SetCookieOnlyCookies(self._cookies)
        speed_up(self._transport)
        self._merged_urls: dict[str, httpx.URL] = {}
        self._merged_base = self._base_url

    def build_request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Request:
        _adapt_file_body(kwargs, iter_file)
        if isinstance(url, str):  # each path is merged with the base URL once (issue 12)
            merged = self._merged_urls.get(url)
            if merged is None or self._merged_base is not self._base_url:
                if len(self._merged_urls) >= 1024 or self._merged_base is not self._base_url:
                    self._merged_urls.clear()
                    self._merged_base = self._base_url
                merged = self._merged_urls[url] = self._merge_url(url)
            url = merged
        return super().build_request(method, url, **kwargs)

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        with _mapped():
            response = super().send(request, **kwargs)
        response.stream = _MappedStream(response.stream)
        return response


class _AsyncHTTP(httpx.AsyncClient):
    def build_request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Request:
        _adapt_file_body(kwargs, aiter_file)
        return super().build_request(method, url, **kwargs)

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        with _mapped():
            response = await super().send(request, **kwargs)
        response.stream = _AsyncMappedStream(response.stream)
        return response


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


def sync_http(kwargs: dict[str, Any]) -> httpx.Client:
    """The sync httpx client for ``AuthenticatedClient.httpx_client_kwargs()``."""
    return _SyncHTTP(**_with_hook(kwargs, _raise_for_error))


def async_http(kwargs: dict[str, Any], transport: str) -> httpx.AsyncClient:
    """The async httpx client; on ``transport="aiohttp"`` it sends through aiohttp."""
    kwargs = _with_hook(kwargs, _araise_for_error)
    kwargs.setdefault("limits", ASYNC_POOL_LIMITS)
    if transport == "aiohttp":
        from ._aiohttp import SandboxAiohttpTransport

        options = {k: kwargs[k] for k in ("verify", "cert", "trust_env", "limits") if k in kwargs}
        kwargs["transport"] = SandboxAiohttpTransport(**options)
    return _AsyncHTTP(**kwargs)
