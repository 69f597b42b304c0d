"""Running a local sandbox: `LocalSandbox` (uvicorn in a background thread) and the `main` command."""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import os
import socket
import sys
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Self

import uvicorn

from ._app import DEFAULT_MAX_BODY_BYTES, create_app
from ._security import generate_token, host_is_loopback

if TYPE_CHECKING:
    from tensorlake_sandbox import SandboxClient

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "LocalSandbox", "main"]

DEFAULT_HOST = "127.0.0.1"
# The token can come from this variable instead of --token (which `ps` shows to other users).
TOKEN_ENV = "TENSORLAKE_LOCAL_TOKEN"
DEFAULT_PORT = 8500
# Open follow (SSE) streams never end by themselves; shutdown waits this long for them.
_GRACEFUL_SHUTDOWN_SECONDS = 2


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def _allowed_hosts(host: str, allow_remote: bool) -> frozenset[str] | None:
    """Host names accepted besides loopback ones (None: any), refusing a remote bind unless allowed."""
    if host_is_loopback(host.strip("[]")):
        return frozenset()
    if not allow_remote:
        raise ValueError(
            f"refusing to listen on {host!r}: a local sandbox runs commands as your user, so it "
            "binds to loopback only. Pass --allow-remote to listen on another address anyway."
        )
    return None if _is_wildcard(host) else frozenset({host.strip("[]").lower()})


def _bind(host: str, port: int) -> socket.socket:
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class LocalSandbox:
    """A local sandbox served from a background thread, for tests, demos and notebooks.

    >>> with LocalSandbox() as sb:  # doctest: +SKIP
    ...     client = sb.client()

    ``port=0`` picks a free port; ``token=None`` generates one. ``extra_hosts`` are Host
    names accepted besides loopback ones (e.g. the ``<sandbox-id>.local`` that Tensorlake's
    official SDK sends to a localhost proxy). Stopping it (leaving the ``with`` block) kills
    every process it started. Processes run as the current user.
    """

    def __init__(
        self,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        token: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        allow_remote: bool = False,
        extra_hosts: Iterable[str] = (),
    ) -> None:
        self.token = token if token is not None else generate_token()
        allowed = _allowed_hosts(host, allow_remote)
        if allowed is not None:
            allowed = allowed | {h.lower() for h in extra_hosts}
        self._app = create_app(token=self.token, max_body_bytes=max_body_bytes, allowed_hosts=allowed)
        self._host = host
        self._port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self._base_url: str | None = None

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("the local sandbox is not running; call start() or use it in a with block")
        return self._base_url

    def client(self) -> SandboxClient:
        """A shim client for this sandbox, for the generated functions."""
        from tensorlake_sandbox import sandbox_client

        return sandbox_client(base_url=self.base_url, api_key=self.token)

    def start(self, timeout: float = 10.0) -> Self:
        if self._thread is not None:
            raise RuntimeError("the local sandbox is already running")
        sock = _bind(self._host, self._port)
        config = uvicorn.Config(
            self._app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
            ws="none",
            timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_SECONDS,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="tensorlake-local-sandbox", daemon=True
        )
        thread.start()
        ready = threading.Event()
        while not server.started and thread.is_alive() and not ready.wait(0.01):
            pass
        if not server.started:
            server.should_exit = True
            thread.join(timeout)
            sock.close()
            raise RuntimeError("the local sandbox did not start")
        self._server, self._thread, self._sock = server, thread, sock
        self._base_url = _url(sock)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Stop serving and kill the processes it started (idempotent)."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = None
        self._sock = None
        self._base_url = None
        if thread.is_alive():
            raise RuntimeError("the local sandbox did not stop in time")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


_DESCRIPTION = """\
Run a local sandbox: the Tensorlake sandbox process API on this machine, for development
and tests. Processes started through it run as YOUR user ({user}), with your permissions,
environment and files: there is no isolation. It listens on loopback only, needs a bearer
token on every request, and answers only to loopback Host names. Ctrl-C (or SIGTERM) stops
it and kills every process it started.
"""


def _parser(prog: str) -> argparse.ArgumentParser:
    try:
        user = getpass.getuser()
    except Exception:
        user = "the user running this command"
    parser = argparse.ArgumentParser(
        prog=prog,
        description=_DESCRIPTION.format(user=user),
        epilog=(
            "example:\n"
            f"  {prog} --port 8500                # prints its URL and a token\n"
            "  export TENSORLAKE_API_KEY=<that token>\n"
            "  tensorlake-sandbox exec http://127.0.0.1:8500 -- echo hello"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="port to listen on; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get(TOKEN_ENV) or None,
        help=f"bearer token clients must send (default: ${TOKEN_ENV}, else a random one, printed "
        "once at start); the variable keeps the token out of the process list",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help="largest stdin body accepted in one request; larger ones get 413 (default: %(default)s)",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host. Dangerous: anyone who can reach it with the token "
        "runs commands as your user, and the token travels in clear text",
    )
    return parser


def main(argv: list[str] | None = None, *, prog: str = "python -m tensorlake_sandbox.local") -> int:
    """Run a local sandbox in the foreground until SIGINT or SIGTERM; returns an exit status."""
    parser = _parser(prog)
    args = parser.parse_args(argv)
    if args.max_body_bytes < 1:
        parser.error("--max-body-bytes must be positive")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    if args.token is not None and (not args.token or any(c.isspace() for c in args.token)):
        parser.error("--token must be non-empty and contain no whitespace")
    try:
        allowed = _allowed_hosts(args.host, args.allow_remote)
    except ValueError as exc:
        parser.error(str(exc))
    if allowed != frozenset():
        print(
            f"WARNING: listening on {args.host}, not loopback: anyone who reaches it with the token "
            "can run commands as your user, and plain HTTP shows the token to the network.",
            file=sys.stderr,
        )
    token = args.token if args.token is not None else generate_token()
    try:
        sock = _bind(args.host, args.port)
    except OSError as exc:
        print(f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    app = create_app(token=token, max_body_bytes=args.max_body_bytes, allowed_hosts=allowed)
    print(f"Local sandbox listening on {_url(sock)}")
    if args.token is None:
        print(f"Token (generated, shown once): {token}")
    print("Processes run as your user. Press Ctrl-C to stop; that kills every process started here.")
    sys.stdout.flush()
    config = uvicorn.Config(
        app,
        log_level="info",
        lifespan="on",
        ws="none",
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_SECONDS,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        return 130
    finally:
        sock.close()
    return 0
