"""The per-sandbox client: the generated `AuthenticatedClient`, made safe to hand a key to.

`sandbox_client` checks the URL, the key and the options before anything is sent; the
client it returns has finite timeouts, follows no redirects, never shows the key, and is
the settings object from which `_transports._factory.make_client` builds every connection.
"""

from __future__ import annotations

import asyncio
import math
import os
from typing import Any

import httpx
from attrs import define

from tensorlake_api_client.client import AuthenticatedClient

from ._transports._factory import make_client
from ._urls import DEFAULT_PROXY_HOST, normalize_base_url, sandbox_url

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_TIMEOUT",
    "MAX_TIMEOUT",
    "SandboxClient",
    "check_httpx_args",
    "check_key",
    "check_removed",
    "check_timeout",
    "sandbox_client",
]

# Connect fast or fail; wait up to a minute for a reply (a stdin write waits while the
# process is slow to read). Never None: a request must not hang forever.
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)

# The generated client caches the key and host in its httpx clients: changing them later
# would silently keep the old ones.
_FIXED = frozenset({"token", "prefix", "auth_header_name", "_base_url"})


@define(repr=False)
class SandboxClient(AuthenticatedClient):
    """The generated `AuthenticatedClient` with the shim's safety rules; build it with `sandbox_client`.

    Pass it as ``client=`` to any generated function. Every non-2xx response raises a
    typed `SandboxError` before the generated parser sees it.
    """

    _loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"SandboxClient(base_url={self._base_url!r})"

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FIXED and hasattr(self, name):
            raise AttributeError(
                f"a SandboxClient's {name.lstrip('_')} cannot be changed; "
                "create a new client with sandbox_client(...)"
            )
        super().__setattr__(name, value)

    def get_httpx_client(self) -> httpx.Client:
        if self._client is None or self._client.is_closed:
            self._client = make_client(self, is_async=False)
        return self._client

    def get_async_httpx_client(self) -> httpx.AsyncClient:
        # An httpx.AsyncClient is bound to the event loop that first used it: a client used
        # under a new loop (a second asyncio.run), or after aclose(), gets a fresh one.
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        client = self._async_client
        if client is None or client.is_closed or (loop is not None and self._loop not in (None, loop)):
            client = self._async_client = make_client(self, is_async=True)
            self._loop = loop
        elif self._loop is None:
            self._loop = loop
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
    """A client for one sandbox's API, ready for the generated functions.

    ``sandbox`` is a sandbox ID or name (``https://{sandbox}.sandbox.tensorlake.ai``);
    ``base_url`` is used instead when given: the sandbox's ``ingress_endpoint``, or a
    local sandbox such as ``http://127.0.0.1:8500``. The key comes from ``api_key``,
    else from ``TENSORLAKE_API_KEY``. ``timeout`` is in seconds or an `httpx.Timeout`;
    ``None`` waits forever and is not recommended.

    Every connection goes through one HTTP/1.1 transport (README, "One engine"); the
    ``fast_path=`` and ``async_transport=`` options of earlier versions were removed.
    """
    check_removed(removed)
    if (sandbox is None) == (base_url is None):
        raise ValueError(
            "pass exactly one of sandbox= (a sandbox ID or name) or base_url= (its ingress_endpoint)"
        )
    url = (
        normalize_base_url(base_url)
        if base_url is not None
        else sandbox_url(sandbox or "", proxy_host=proxy_host)
    )
    key = check_key(api_key)
    httpx_args = dict(httpx_args or {})
    check_httpx_args(httpx_args)
    if timeout is not None and not isinstance(timeout, httpx.Timeout):
        timeout = httpx.Timeout(check_timeout(timeout))
    return SandboxClient(
        base_url=url,
        token=key,
        timeout=timeout,
        follow_redirects=False,
        httpx_args=httpx_args,
    )


# -- checks on what sandbox_client is given --------------------------------------------------------
# Checks on what `sandbox_client` is given, made before anything is sent: the key, the options,
# and the one rule for timeouts (the client's and the process calls').

API_KEY_ENV = "TENSORLAKE_API_KEY"

# httpx_args that would replace what keeps the key safe: where it goes, how, and no redirects.
_FIXED_ARGS = {
    "base_url": "pass base_url= to sandbox_client instead",
    "auth": "the client sends the API key itself; pass api_key=",
    "follow_redirects": "a SandboxClient never follows redirects (the key must not travel to another URL)",
}


# The longest timeout the sandbox takes, in seconds (about 68 years). The spec says only "an
# integer, 1 or more"; the local sandbox, like the daemon's signed 32-bit fields, refuses 2**31 and
# more, and Python's own waits overflow near 9.2e9 s. One rule, checked before anything is sent,
# for the library and the command line alike.
MAX_TIMEOUT = 2**31 - 1


def check_timeout(timeout: object, name: str = "timeout") -> float | None:
    """None, or a positive finite number of seconds the sandbox can take (see MAX_TIMEOUT)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, not {type(timeout).__name__}")
    if not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"{name} must be a positive, finite number of seconds (or None), not {timeout!r}")
    if timeout > MAX_TIMEOUT:
        raise ValueError(
            f"{name} must be at most {MAX_TIMEOUT} seconds (about 68 years), the longest the sandbox "
            f"takes; got {timeout!r}. Pass None for no limit"
        )
    return float(timeout)


def check_key(api_key: str | None) -> str:
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


_REMOVED = {
    "fast_path": "small requests no longer take a separate path",
    "async_transport": "async calls no longer choose a transport",
}


def check_removed(options: dict[str, object]) -> None:
    """Refuse options of earlier versions by name, and any other unknown keyword."""
    for name in options:
        why = _REMOVED.get(name)
        if why is not None:
            raise TypeError(
                f"sandbox_client(): {name}= was removed: {why}; every request of a client goes "
                "through one HTTP/1.1 transport (README, 'One engine'). Drop the argument."
            )
        raise TypeError(f"sandbox_client() got an unexpected keyword argument {name!r}")


def check_httpx_args(httpx_args: dict[str, Any]) -> None:
    """Refuse httpx_args that would replace the base URL, the auth or the redirect rule."""
    for key, why in _FIXED_ARGS.items():
        if key in httpx_args:
            raise ValueError(f"httpx_args[{key!r}] is not allowed: {why}")
    hooks = httpx_args.get("event_hooks")
    if hooks is not None and not (isinstance(hooks, dict) and set(hooks) <= {"request", "response"}):
        raise ValueError(
            'httpx_args["event_hooks"] must be a dict with "request" and/or "response" lists; '
            "they run after the client's own error mapping"
        )
