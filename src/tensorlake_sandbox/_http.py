"""The httpx plumbing under a `SandboxClient`: file bodies streamed, errors mapped, transports.

Every request of a `SandboxClient` goes through the two httpx client classes here: they
turn a file body into a stream from its read position (httpx would send a file only on
the sync path, and take its length from the whole file), and raise the typed
`SandboxError` for every non-2xx response in one response hook, before the generated
parser sees it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import httpx

from ._bodies import aiter_file, is_file_body, iter_file, remaining_length
from ._errors import SandboxError, error_for_status

__all__ = ["async_http", "sync_http"]

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


def _raise_for_error(response: httpx.Response) -> None:
    if not response.is_success:
        response.read()
        raise _error(response)


async def _araise_for_error(response: httpx.Response) -> None:
    if not response.is_success:
        await response.aread()
        raise _error(response)


class _SyncHTTP(httpx.Client):
    def build_request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Request:
        _adapt_file_body(kwargs, iter_file)
        return super().build_request(method, url, **kwargs)


class _AsyncHTTP(httpx.AsyncClient):
    def build_request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Request:
        _adapt_file_body(kwargs, aiter_file)
        return super().build_request(method, url, **kwargs)


def _with_hook(kwargs: dict[str, Any], hook: Callable[[httpx.Response], Any]) -> dict[str, Any]:
    """``kwargs`` with ``hook`` as the first response hook (the user's, if any, run after it)."""
    kwargs = dict(kwargs)
    user_hooks = kwargs.pop("event_hooks", None) or {}
    kwargs["event_hooks"] = {
        "request": list(user_hooks.get("request", [])),
        "response": [hook, *user_hooks.get("response", [])],
    }
    return kwargs


def sync_http(kwargs: dict[str, Any]) -> httpx.Client:
    """The sync httpx client for ``AuthenticatedClient.httpx_client_kwargs()``."""
    return _SyncHTTP(**_with_hook(kwargs, _raise_for_error))


def async_http(kwargs: dict[str, Any], transport: str) -> httpx.AsyncClient:
    """The async httpx client; on ``transport="aiohttp"`` it sends through aiohttp."""
    kwargs = _with_hook(kwargs, _araise_for_error)
    if transport == "aiohttp":
        from ._aiohttp import SandboxAiohttpTransport

        options = {k: kwargs[k] for k in ("verify", "cert", "trust_env", "limits") if k in kwargs}
        kwargs["transport"] = SandboxAiohttpTransport(**options)
    return _AsyncHTTP(**kwargs)
