"""The per-sandbox client: the generated `AuthenticatedClient`, made safe to hand a key to.

It knows the sandbox's base URL and bearer key, has finite timeouts, follows no
redirects, streams file bodies on both the sync and the async path, raises a typed
`SandboxError` for every non-2xx response, and never shows the key.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Callable, Generator
from typing import Any, Literal, get_args

import httpx
from attrs import define, field

from tensorlake_api_client.client import AuthenticatedClient

from ._bodies import aiter_file, is_file_body, iter_file, remaining_length
from ._errors import SandboxError, error_for_status
from ._urls import DEFAULT_PROXY_HOST, normalize_base_url, sandbox_url

__all__ = ["API_KEY_ENV", "DEFAULT_TIMEOUT", "SandboxClient", "sandbox_client"]

API_KEY_ENV = "TENSORLAKE_API_KEY"

# Connect fast or fail; wait up to a minute for a reply (a stdin write waits while the
# process is slow to read). Never None: a request must not hang forever.
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


class _BearerAuth(httpx.Auth):
    """Adds ``Authorization: Bearer <key>``; the key is kept out of every repr."""

    def __init__(self, token: str, prefix: str, header: str):
        self._value = f"{prefix} {token}" if prefix else token
        self._header = header

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self._header] = self._value
        yield request

    def __repr__(self) -> str:
        return "<BearerAuth [secret]>"


AsyncTransport = Literal["httpx", "aiohttp"]

# httpx_args that would send requests around the aiohttp transport, or ask what it cannot do.
_NOT_WITH_AIOHTTP = ("transport", "mounts", "proxy", "http2")

_AIOHTTP_MISSING = (
    'async_transport="aiohttp" needs the httpx-aiohttp package: '
    'pip install "tensorlake-sandbox-client[aiohttp]"'
)


def _check_async_transport(async_transport: object, httpx_args: dict[str, Any]) -> None:
    if async_transport not in get_args(AsyncTransport):
        raise ValueError(f'async_transport must be "httpx" or "aiohttp", not {async_transport!r}')
    if async_transport != "aiohttp":
        return
    clash = [k for k in _NOT_WITH_AIOHTTP if httpx_args.get(k)]
    if clash:
        raise ValueError(
            f'async_transport="aiohttp" builds its own transport: drop httpx_args {", ".join(clash)} '
            'or use async_transport="httpx"'
        )
    try:
        from . import _aiohttp  # noqa: F401
    except ImportError as exc:
        raise ImportError(_AIOHTTP_MISSING) from exc


def _aiohttp_transport(kwargs: dict[str, Any]) -> httpx.AsyncBaseTransport:
    """A fresh aiohttp transport; its session is made in the event loop that first uses it."""
    from ._aiohttp import SandboxAiohttpTransport

    options = {k: kwargs[k] for k in ("verify", "cert", "trust_env", "limits") if k in kwargs}
    return SandboxAiohttpTransport(**options)


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


def _raise_for_error(response: httpx.Response) -> None:
    if not response.is_success:
        response.read()
        raise _error(response)


async def _araise_for_error(response: httpx.Response) -> None:
    if not response.is_success:
        await response.aread()
        raise _error(response)


def _error(response: httpx.Response) -> SandboxError:
    err = error_for_status(response.status_code, response.content, path=response.request.url.path)
    err.response = response  # type: ignore[attr-defined]
    return err


class _SyncHTTP(httpx.Client):
    def build_request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Request:
        _adapt_file_body(kwargs, iter_file)
        return super().build_request(method, url, **kwargs)


class _AsyncHTTP(httpx.AsyncClient):
    def build_request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Request:
        _adapt_file_body(kwargs, aiter_file)
        return super().build_request(method, url, **kwargs)


def _httpx_kwargs(client: AuthenticatedClient, hooks: list[Any]) -> dict[str, Any]:
    extra = dict(client._httpx_args)
    user_hooks = extra.pop("event_hooks", {})
    event_hooks = {
        "request": list(user_hooks.get("request", [])),
        "response": [*hooks, *user_hooks.get("response", [])],
    }
    return {
        "base_url": client._base_url,
        "cookies": client._cookies,
        "headers": client._headers,
        "timeout": client._timeout,
        "verify": client._verify_ssl,
        "follow_redirects": client._follow_redirects,
        "auth": _BearerAuth(client.token, client.prefix, client.auth_header_name),
        "event_hooks": event_hooks,
        **extra,
    }


_FIXED = frozenset({"token", "prefix", "auth_header_name", "_base_url"})


@define(repr=False)
class SandboxClient(AuthenticatedClient):
    """The generated `AuthenticatedClient` with the shim's safety rules; build it with `sandbox_client`.

    Pass it as ``client=`` to any generated function. Every non-2xx response raises a
    typed `SandboxError` before the generated parser sees it.
    """

    _loop: asyncio.AbstractEventLoop | None = None
    _async_transport: AsyncTransport = field(default="httpx", kw_only=True, alias="async_transport")

    def __repr__(self) -> str:
        return f"SandboxClient(base_url={self._base_url!r})"

    def __setattr__(self, name: str, value: Any) -> None:
        # The generated client caches the key in its httpx clients: a key or host changed
        # later would silently keep the old one. Refuse instead.
        if name in _FIXED and hasattr(self, name):
            raise AttributeError(
                f"a SandboxClient's {name.lstrip('_')} cannot be changed; "
                "create a new client with sandbox_client(...)"
            )
        super().__setattr__(name, value)

    def get_httpx_client(self) -> httpx.Client:
        if self._client is None or self._client.is_closed:
            self._client = _SyncHTTP(**_httpx_kwargs(self, [_raise_for_error]))
        return self._client

    def get_async_httpx_client(self) -> httpx.AsyncClient:
        # An httpx.AsyncClient is bound to the event loop that first used it: a client used
        # under a new loop (a second asyncio.run), or after aclose(), gets a fresh one.
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        stale = self._async_client is None or self._async_client.is_closed
        if stale or (loop is not None and self._loop not in (None, loop)):
            kwargs = _httpx_kwargs(self, [_araise_for_error])
            if self._async_transport == "aiohttp":
                kwargs["transport"] = _aiohttp_transport(kwargs)
            self._async_client = _AsyncHTTP(**kwargs)
            self._loop = loop
        elif self._loop is None:
            self._loop = loop
        assert self._async_client is not None
        return self._async_client

    def close(self) -> None:
        """Close the sync connections; the client can still be used afterwards."""
        if self._client is not None:
            self._client.close()

    async def aclose(self) -> None:
        """Close the async connections (call it in the event loop that used them)."""
        if self._async_client is not None:
            await self._async_client.aclose()


def _check_key(api_key: str | None) -> str:
    if api_key is None:
        api_key = os.environ.get(API_KEY_ENV)
        if not api_key:
            raise ValueError(f"no API key: set the {API_KEY_ENV} environment variable or pass api_key=")
    if not isinstance(api_key, str):
        raise TypeError(f"api_key must be a str, not {type(api_key).__name__}")
    if not api_key:
        raise ValueError("api_key is empty: pass your Tensorlake API key")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in api_key):
        raise ValueError(
            "the API key contains whitespace or control characters (a stray newline from a "
            f"file?); strip it before use (checked {API_KEY_ENV} or api_key=)"
        )
    if not api_key.isascii():
        raise ValueError("the API key contains non-ASCII characters; check that it was copied whole")
    return api_key


def sandbox_client(
    sandbox: str | None = None,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    proxy_host: str = DEFAULT_PROXY_HOST,
    timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
    httpx_args: dict[str, Any] | None = None,
    async_transport: AsyncTransport = "httpx",
) -> SandboxClient:
    """A client for one sandbox's API, ready for the generated functions.

    ``sandbox`` is a sandbox ID or name (``https://{sandbox}.sandbox.tensorlake.ai``);
    ``base_url`` is used instead when given: the sandbox's ``ingress_endpoint``, or a
    local sandbox such as ``http://127.0.0.1:8500``. The key comes from ``api_key``,
    else from ``TENSORLAKE_API_KEY``. ``timeout`` is in seconds or an `httpx.Timeout`;
    ``None`` waits forever and is not recommended.

    ``async_transport="aiohttp"`` sends the async calls through aiohttp (the ``aiohttp``
    extra): much faster when many requests run at once (measured by make bench). Each
    event loop gets its own aiohttp session; `SandboxClient.aclose` closes it. It cannot
    be combined with ``httpx_args`` ``transport``, ``mounts``, ``proxy`` or ``http2``, and
    it ignores proxy environment variables. The sync calls always use httpx.
    """
    if (sandbox is None) == (base_url is None):
        raise ValueError(
            "pass exactly one of sandbox= (a sandbox ID or name) or base_url= (its ingress_endpoint)"
        )
    url = (
        normalize_base_url(base_url)
        if base_url is not None
        else sandbox_url(sandbox or "", proxy_host=proxy_host)
    )
    key = _check_key(api_key)
    httpx_args = dict(httpx_args or {})
    _check_async_transport(async_transport, httpx_args)
    if timeout is not None and not isinstance(timeout, httpx.Timeout):
        timeout = httpx.Timeout(timeout)
    return SandboxClient(
        base_url=url,
        token=key,
        timeout=timeout,
        follow_redirects=False,
        httpx_args=httpx_args,
        async_transport=async_transport,
    )
