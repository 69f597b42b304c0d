"""The one client factory: every connection the package opens is made by `make_client`.

From one settings object (a `SandboxClient`) it builds the `httpx.Client` / `httpx.AsyncClient`
with the engine's transport (httpx's own only for a proxy or HTTP/2), no proxy for a loopback
sandbox, one `ssl.SSLContext` from httpx's rules, every failure and non-2xx answer mapped to
the package's errors, and file bodies streamed from their position (README, "The client").
"""

from __future__ import annotations

from typing import Any, Literal, overload
from urllib.request import getproxies, proxy_bypass

import httpx

from tensorlake_api_client.client import AuthenticatedClient

from .._async import _transport as _async
from .._sync import _transport as _sync
from .._urls import is_loopback_host

__all__ = ["LIMITS", "make_client"]

# Keep every connection that concurrent calls open alive (32 writers: 32 connections, no churn).
LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=100, keepalive_expiry=5.0)

# httpx_args that choose the transport rather than the client.
_TRANSPORT_ARGS = ("verify", "cert", "trust_env", "http1", "http2", "limits", "proxy", "mounts", "transport")


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
        transport = (_async.AsyncTransport if is_async else _sync.Transport)(context, limits)
    mounts = dict(opts.get("mounts") or {})
    if loopback:  # None: the client's own transport; a host pattern outranks any other mount
        mounts[f"all://{base.netloc.decode('ascii')}"] = None
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
    if not isinstance(transport, (_sync.Transport, _async.AsyncTransport)):  # ours raises our errors
        transport = _async.AsyncMapped(transport) if is_async else _sync.Mapped(transport)
    cls = _async.AsyncClient if is_async else _sync.Client
    return cls(**kwargs, transport=transport, mounts=mounts, trust_env=False, event_hooks=hooks)


def _proxy(base: httpx.URL, opts: dict[str, Any]) -> Any:
    if "proxy" in opts:
        return opts["proxy"]
    if not opts.get("trust_env", True):
        return None
    proxies = getproxies()
    url = proxies.get(base.scheme) or proxies.get("all")
    return url if url and not proxy_bypass(base.host) else None
