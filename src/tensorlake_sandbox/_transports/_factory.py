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

# Keep every connection that concurrent calls open alive (32 writers: 32 connections, no churn), for
# less time than a server keeps it (the local sandbox: 5 s), so that a write never meets its close.
LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=100, keepalive_expiry=4.0)


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
    proxy = None
    if not is_loopback_host(base.host):  # a loopback sandbox never goes through, nor reads, a proxy
        proxy = proxy_url(opts["proxy"]) if opts.get("proxy") else _env_proxy(base, trust_env)
    transport: Any = (_async.AsyncTransport if is_async else _sync.Transport)(
        context, opts.get("limits", LIMITS), proxy
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


def _env_proxy(base: httpx.URL, trust_env: bool) -> httpx.URL | None:
    """The environment's proxy for ``base`` (``host:port`` alone taken as http://, as httpx and curl do)."""
    proxies = getproxies() if trust_env else {}
    url = proxies.get(base.scheme) or proxies.get("all")
    if not url or proxy_bypass(base.host):
        return None
    where = f"the environment's proxy ({base.scheme.upper()}_PROXY or ALL_PROXY)"
    return proxy_url(url if "://" in url else f"http://{url}", where)


def proxy_url(proxy: object, where: str = "httpx_args['proxy']") -> httpx.URL:
    """The one rule for a proxy, from ``httpx_args`` or the environment: ``http://[user:pw@]host[:port]``
    with no path or query; any other is a ValueError that says why (never showing a password)."""
    try:
        url: httpx.URL | None = httpx.URL(proxy)  # type: ignore[arg-type]  # a TypeError unless str or URL
    except (TypeError, httpx.InvalidURL):
        url = None
    if url is None or url.scheme != "http" or not url.host or url.raw_path not in (b"", b"/") or url.fragment:
        shown = (
            "" if url is None else f", not {url.scheme}://{url.host}{url.raw_path.decode('ascii', 'replace')}"
        )
        raise ValueError(
            f"{where} refused: pass an http:// proxy URL with no path or query (https:// and socks5:// "
            f"proxies are not supported; NO_PROXY skips the proxy for a host){shown}"
        )
    return url
