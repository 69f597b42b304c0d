"""Checks on what `sandbox_client` is given, made before anything is sent: the key, the options,
and the one rule for timeouts (the client's and the process calls')."""

from __future__ import annotations

import math
import os
from typing import Any

__all__ = ["API_KEY_ENV", "MAX_TIMEOUT", "check_httpx_args", "check_key", "check_removed", "check_timeout"]

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
