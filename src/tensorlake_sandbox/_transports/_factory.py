"""The one client factory: every connection the package opens is made by `make_client`.

From one settings object (a `SandboxClient`) it builds the `httpx.Client` / `httpx.AsyncClient`
on the engine's transport: one `ssl.SSLContext` from httpx's rules, the environment's proxy
(never for a loopback sandbox), error statuses raised as the package's errors, and file
bodies streamed from their position (README, "The client").
"""

from __future__ import annotations

from typing import Any, Literal, overload
from urllib.request import getproxies, proxy_bypass

import httpx

from tensorlake_api_client.client import AuthenticatedClient

from .._async import _transport as _async
from .._sync import _transport as _sync
from .._urls import is_loopback_host

# Keep every connection that concurrent calls open alive (32 writers: 32 connections, no churn).
LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=100, keepalive_expiry=5.0)


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
    """The httpx client for ``settings``; ``websocket=True`` for one that opens websockets only.

    (``sandbox_client`` has refused the ``httpx_args`` the transport cannot honour; a user's own
    ``transport`` or ``mounts`` given some other way collides with the engine's: a TypeError.)
    """
    kwargs = settings.httpx_client_kwargs()
    opts = {
        k: kwargs.pop(k)
        for k in ("verify", "cert", "trust_env", "limits", "proxy", "http1", "http2")
        if k in kwargs
    }
    base = httpx.URL(kwargs["base_url"])
    trust_env = opts.get("trust_env", True)
    context = httpx.create_ssl_context(
        verify=opts.get("verify", True), cert=opts.get("cert"), trust_env=trust_env
    )
    proxy = None if is_loopback_host(base.host) else opts.get("proxy", _env_proxy(base, trust_env))
    limits = opts.get("limits", LIMITS)
    transport: Any = (_async.AsyncTransport if is_async else _sync.Transport)(
        context, limits, None if proxy is None else proxy_url(proxy)
    )
    user_hooks = kwargs.pop("event_hooks", None) or {}
    if websocket:
        first: Any = _async.aread_refusal if is_async else _sync.read_refusal
        kwargs["follow_redirects"] = False
    else:
        first = _async.araise_for_error if is_async else _sync.raise_for_error
    hooks = {
        "request": list(user_hooks.get("request", [])),
        "response": [first, *user_hooks.get("response", [])],
    }
    cls = _async.AsyncClient if is_async else _sync.Client
    return cls(**kwargs, transport=transport, mounts={}, trust_env=False, event_hooks=hooks)


def _env_proxy(base: httpx.URL, trust_env: bool) -> str | None:
    if not trust_env:
        return None
    proxies = getproxies()
    url = proxies.get(base.scheme) or proxies.get("all")
    return url if url and not proxy_bypass(base.host) else None


def proxy_url(proxy: str | httpx.URL) -> httpx.URL:
    """A proxy the engine can use: ``http://[user:password@]host[:port]`` (``host:port`` alone is
    taken as http://, as curl does); a ValueError that says why for any other."""
    text = str(proxy)
    url = httpx.URL(text if "://" in text else f"http://{text}")
    if url.scheme != "http" or not url.host or url.path not in ("", "/") or url.query:
        raise ValueError(
            f"proxy {url.copy_with(username=None, password=None)} is not supported: the engine tunnels "
            "through http://host:port proxies only (no https:// or socks5:// proxy, no path). "
            "Set HTTPS_PROXY / httpx_args['proxy'] to an http:// proxy, or NO_PROXY to skip it."
        )
    return url
