"""Clients that a test makes and that must be closed when it ends: `close_after_test`.

The conftest closes them after every test, and before the servers of `make_server` stop,
so that a server never waits for a kept-alive connection that a finished test left open.
"""

from __future__ import annotations

from tensorlake_sandbox import SandboxClient

__all__ = ["close_after_test", "close_all"]

_open: list[SandboxClient] = []


def close_after_test(client: SandboxClient) -> SandboxClient:
    """Register ``client`` (its sync connections) to be closed when the test ends."""
    _open.append(client)
    return client


def close_all() -> None:
    while _open:
        _open.pop().close()
