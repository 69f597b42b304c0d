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
Stopping the server kills every process it started, and so does closing its terminal
(SIGHUP) or the interpreter exiting; on Linux the processes it started die with it even
when it is killed. The token and any ``TENSORLAKE_*`` variable of the server's environment
are not passed on to processes.

Memory is bounded: each process keeps its last 16 MiB of output, the server 64 MiB in all
and 256 finished processes; beyond that the oldest lines and finished processes are forgotten
(their pid answers 404), but never a line an attached follow or run stream has not read: the
process waits instead, as on a full pipe. Follow events carry their line position (SSE
``id``). Output endpoints stream their answer.
"""

try:
    from ._app import DEFAULT_MAX_BODY_BYTES, create_app
    from ._server import DEFAULT_HOST, DEFAULT_PORT, LocalSandbox, main
except ModuleNotFoundError as _exc:  # the `local` extra is not installed: say so in one line
    from ._missing import EXTRA_MODULES, MISSING_EXTRA
    from ._missing import main as main

    if (_exc.name or "").partition(".")[0] not in EXTRA_MODULES:
        raise

    def __getattr__(name: str) -> object:
        raise ImportError(MISSING_EXTRA)


__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_PORT",
    "LocalSandbox",
    "create_app",
    "main",
]
