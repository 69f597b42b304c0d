"""A local sandbox: the documented Tensorlake process API, served on loopback by this machine.

Start one with ``python -m tensorlake_sandbox.local`` (or ``tensorlake-sandbox local``), or
from Python::

    with LocalSandbox() as sb:
        client = sb.client()  # for the generated functions

It implements every operation of ``openapi.yaml`` plus the follow (SSE) endpoints, with the
sandbox daemon's rules: a 2 MiB limit per stdin request, ``STDIN_NOT_WRITABLE`` for a pipe
that is not open, ``NOT_FOUND`` for an unknown pid.

Security: processes run as the user who started the server, with that user's permissions,
environment and files; there is no isolation. That is why the server binds to 127.0.0.1 by
default (a remote address needs ``allow_remote``), requires a bearer token on every request,
answers only to loopback Host names (no DNS rebinding), and serves nothing but the process API.
Stopping the server kills every process it started.
"""

from ._app import DEFAULT_MAX_BODY_BYTES, create_app
from ._server import DEFAULT_HOST, DEFAULT_PORT, LocalSandbox, main

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_PORT",
    "LocalSandbox",
    "create_app",
    "main",
]
