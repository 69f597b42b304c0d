"""The per-sandbox client: the generated `AuthenticatedClient`, made safe to hand a key to. Its
checks run before anything is sent; `_transports._factory.make_client` builds every connection from it."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any, NoReturn

import httpx
from attrs import define

from tensorlake_api_client.client import AuthenticatedClient

from ._transports._factory import make_client, proxy_url
from ._urls import BLANK_OR_CONTROL, DEFAULT_PROXY_HOST, normalize_base_url, sandbox_url

# Connect fast or fail; wait up to a minute for a reply. Never None: a request must not hang forever.
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
# The longest timeout the sandbox takes (about 68 years): the local sandbox, like the daemon's signed
# 32-bit fields, refuses 2**31 s and more. One rule for the library and the command line.
MAX_TIMEOUT = 2**31 - 1
API_KEY_ENV = "TENSORLAKE_API_KEY"


# Without the engine's client, error statuses would not raise and stdin writes would not be counted.
_OWN_CONNECTIONS = (
    "a SandboxClient makes its own connections (README, 'One engine'); pass their options as "
    "sandbox_client(..., httpx_args={...})"
)


@define(repr=False)
class SandboxClient(AuthenticatedClient):
    """The generated `AuthenticatedClient` with the shim's safety rules; build it with `sandbox_client`."""

    _loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"SandboxClient(base_url={self._base_url!r})"

    def __setattr__(self, name: str, value: Any) -> None:
        # The generated client caches these in its httpx clients: a change would silently be ignored.
        if name in ("token", "prefix", "auth_header_name", "_base_url") and hasattr(self, name):
            raise AttributeError(f"{name.lstrip('_')} cannot be changed: make a new sandbox_client()")
        super().__setattr__(name, value)

    def set_httpx_client(self, client: httpx.Client) -> NoReturn:
        raise TypeError(_OWN_CONNECTIONS)

    def set_async_httpx_client(self, async_client: httpx.AsyncClient) -> NoReturn:
        raise TypeError(_OWN_CONNECTIONS)

    def get_httpx_client(self) -> httpx.Client:
        if self._client is None or self._client.is_closed:
            self._client = make_client(self, is_async=False)
        return self._client

    def get_async_httpx_client(self) -> httpx.AsyncClient:
        # An httpx.AsyncClient is bound to the event loop that first used it: under another loop
        # (a second asyncio.run), or after aclose(), the client gets a fresh one.
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        client = self._async_client
        if client is None or client.is_closed or (loop is not None and self._loop not in (None, loop)):
            client = self._async_client = make_client(self, is_async=True)
            self._loop = loop
        self._loop = self._loop or loop
        return client

    def close(self) -> None:
        """Close the sync connections; the client can still be used afterwards."""
        if self._client is not None:
            self._client.close()

    async def aclose(self) -> None:
        """Close the async connections (call it in the event loop that used them)."""
        if self._async_client is not None:
            await self._async_client.aclose()


def sandbox_client(
    sandbox: str | None = None,
    *,
    api_key: str | None = None,
    base_url: str | None = None,
    proxy_host: str = DEFAULT_PROXY_HOST,
    timeout: httpx.Timeout | float | None = DEFAULT_TIMEOUT,
    httpx_args: dict[str, Any] | None = None,
    **removed: object,
) -> SandboxClient:
    """A client for one sandbox's API, by ``sandbox`` ID or name or by ``base_url`` (README, "The
    client"); ``timeout`` in seconds or an `httpx.Timeout` (None waits forever: not recommended)."""
    check_removed(removed)
    if (sandbox is None) == (base_url is None):
        raise ValueError("pass exactly one of sandbox= (an ID or name) or base_url= (an ingress_endpoint)")
    if base_url is None:  # a URL made by sandbox_url passes normalize_base_url unchanged
        base_url = sandbox_url(sandbox or "", proxy_host=proxy_host)
    url, key = normalize_base_url(base_url), check_key(api_key)
    check_httpx_args(args := dict(httpx_args or {}))
    if timeout is not None and not isinstance(timeout, httpx.Timeout):
        timeout = httpx.Timeout(check_timeout(timeout))
    return SandboxClient(base_url=url, token=key, timeout=timeout, follow_redirects=False, httpx_args=args)


def check_timeout(timeout: object, name: str = "timeout") -> float | None:
    """None, or a number of seconds the sandbox can take: above 0 and at most MAX_TIMEOUT."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, not {type(timeout).__name__}")
    if not 0 < timeout <= MAX_TIMEOUT:  # NaN included
        raise ValueError(
            f"{name} must be a positive, finite number: at most {MAX_TIMEOUT} seconds (about 68 years, "
            f"the longest the sandbox takes), or None for no limit; not {timeout!r}"
        )
    return float(timeout)


def check_key(api_key: str | None) -> str:
    """The API key, from ``api_key`` or else the environment, once checked."""
    key = os.environ.get(API_KEY_ENV) if api_key is None else api_key
    if api_key is None and not key:
        raise ValueError(f"no API key: set the {API_KEY_ENV} environment variable or pass api_key=")
    if not isinstance(key, str):
        raise TypeError(f"api_key must be a str, not {type(key).__name__}")
    if not key:
        raise ValueError("api_key is empty: pass your Tensorlake API key")
    if BLANK_OR_CONTROL.search(key):
        raise ValueError("the API key has whitespace or control characters (a stray newline?): strip it")
    if not key.isascii():
        raise ValueError("the API key contains non-ASCII characters; check that it was copied whole")
    return key


def check_removed(options: dict[str, object]) -> None:
    """Refuse options of earlier versions by name, and any other unknown keyword."""
    for name in options:
        if name in ("fast_path", "async_transport"):
            raise TypeError(
                f"sandbox_client(): {name}= was removed: every request of a client goes through one "
                "HTTP/1.1 transport (README, 'One engine'). Drop the argument."
            )
        raise TypeError(f"sandbox_client() got an unexpected keyword argument {name!r}")


_ENGINE = "every request goes through the engine's transport (README, 'One engine')"
# httpx_args refused: (when, given the value; why). They would send the key elsewhere, or ask for
# what the engine's one HTTP/1.1 transport does not do.
_REFUSED: dict[str, tuple[Callable[[Any], bool], str]] = {
    "base_url": (lambda _: True, "pass base_url= to sandbox_client instead"),
    "auth": (lambda _: True, "the client sends the API key itself; pass api_key="),
    "follow_redirects": (lambda _: True, "redirects are never followed (the key must not go to another URL)"),
    "transport": (lambda _: True, f"{_ENGINE}; for a fake sandbox, run `python -m tensorlake_sandbox.local`"),
    "mounts": (lambda _: True, f"{_ENGINE}; for a fake sandbox, run `python -m tensorlake_sandbox.local`"),
    "http2": (bool, "the engine speaks HTTP/1.1 only; drop it"),
    "http1": (lambda v: not v, "the engine speaks HTTP/1.1 only; drop it"),
    "limits": (
        lambda v: v is not None and not (isinstance(v, httpx.Limits) and v.max_connections is None),
        "the engine cannot cap open connections: pass httpx.Limits(max_connections=None, ...)",
    ),
    "event_hooks": (
        lambda v: v is not None and not (isinstance(v, dict) and set(v) <= {"request", "response"}),
        'pass a dict of "request" and/or "response" lists (they run after the client\'s own error mapping)',
    ),
}


def check_httpx_args(httpx_args: dict[str, Any]) -> None:
    """Refuse httpx_args that would send the key elsewhere or that the engine's transport cannot honour."""
    for key, (refused, why) in _REFUSED.items():
        if key in httpx_args and refused(httpx_args[key]):
            raise ValueError(f"httpx_args[{key!r}] refused: {why}")
    if httpx_args.get("proxy") is not None:
        proxy_url(httpx_args["proxy"])  # the one rule for a proxy (the environment's too)
