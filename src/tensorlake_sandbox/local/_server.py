"""Running a local sandbox: `LocalSandbox` (uvicorn in a background thread) and the `main` command."""

from __future__ import annotations

import argparse
import contextlib
import errno
import getpass
import ipaddress
import os
import signal
import socket
import sys
import weakref
from collections.abc import Iterable
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, NoReturn, Self

from uvicorn.config import LOGGING_CONFIG

from ._app import DEFAULT_MAX_BODY_BYTES, create_app, end_streams
from ._pty_session import KILL_GRACE
from ._pty_table import EXITED_TTL
from ._runner import Server, ServerThread, bind, make_config
from ._security import generate_token, host_is_loopback, log_config
from ._supervisor import STOP_GRACE

if TYPE_CHECKING:
    from tensorlake_sandbox import SandboxClient

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "LocalSandbox", "main"]

DEFAULT_HOST = "127.0.0.1"
# The token can come from this variable instead of --token (which `ps` shows to other users).
TOKEN_ENV = "TENSORLAKE_LOCAL_TOKEN"
DEFAULT_PORT = 8500


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


def _url(sock: socket.socket) -> str:
    """A URL that reaches ``sock`` from this machine: loopback for a wildcard address."""
    host, port = sock.getsockname()[:2]
    if _is_wildcard(host):
        host = "::1" if ":" in host else "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _stop_quietly(server: ServerThread) -> None:
    """At interpreter exit (or when a running LocalSandbox is garbage-collected): stop it."""
    with contextlib.suppress(Exception):
        server.stop(10)


class LocalSandbox:
    """A local sandbox served from a background thread, for tests, demos and notebooks.

    >>> with LocalSandbox() as sb:  # doctest: +SKIP
    ...     client = sb.client()

    ``port=0`` picks a free port; ``token=None`` generates one. ``extra_hosts`` are Host
    names accepted besides loopback ones. Stopping it (leaving the ``with`` block, calling
    `stop`, or the interpreter exiting) kills every process it started. Processes run as the
    current user.
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
        stop_grace: float = STOP_GRACE,
        pty_kill_grace: float = KILL_GRACE,
        pty_exited_ttl: float = EXITED_TTL,
    ) -> None:
        """The grace periods (seconds, see `create_app`) are the daemon's by default; tests shorten them."""
        self.token = token if token is not None else generate_token()
        allowed = _allowed_hosts(host, allow_remote)
        if allowed is not None:
            allowed = allowed | {h.lower() for h in extra_hosts}
        self._app = create_app(
            token=self.token,
            max_body_bytes=max_body_bytes,
            allowed_hosts=allowed,
            stop_grace=stop_grace,
            pty_kill_grace=pty_kill_grace,
            pty_exited_ttl=pty_exited_ttl,
        )
        self._host = host
        self._port = port
        self._server: ServerThread | None = None
        self._finalizer: weakref.finalize[[ServerThread], None] | None = None
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
        if self._server is not None:
            raise RuntimeError("the local sandbox is already running")
        sock = bind(self._host, self._port)
        app = self._app
        server = ServerThread(
            make_config(app), sock, name="tensorlake-local-sandbox", before_shutdown=lambda: end_streams(app)
        )
        try:
            server.start(timeout)
        except RuntimeError:
            raise RuntimeError("the local sandbox did not start") from None
        self._server = server
        self._finalizer = weakref.finalize(self, _stop_quietly, server)  # type: ignore[arg-type]
        self._base_url = _url(sock)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Stop serving and kill the processes it started (idempotent)."""
        server, self._server, self._base_url = self._server, None, None
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if server is None:
            return
        try:
            server.stop(timeout)
        except RuntimeError:
            raise RuntimeError("the local sandbox did not stop in time") from None

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


class _Parser(argparse.ArgumentParser):
    """argparse, with each usage error on one line that says where the help is."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _port(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)") from None


def _parser(prog: str) -> argparse.ArgumentParser:
    try:
        user = getpass.getuser()
    except Exception:
        user = "the user running this command"
    parser = _Parser(
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
        type=_port,
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
    parser.add_argument(
        "--log-requests",
        action="store_true",
        help="log every request (by default only warnings and errors are logged)",
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
        sock = bind(args.host, args.port)
    except OSError as exc:
        hint = ""
        if exc.errno == errno.EADDRINUSE:
            hint = " (another local sandbox may be running there; --port 0 picks a free port)"
        print(
            f"error: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}{hint}", file=sys.stderr
        )
        return 1
    app = create_app(token=token, max_body_bytes=args.max_body_bytes, allowed_hosts=allowed)
    where = " (listening on every address)" if _is_wildcard(args.host) else ""
    print(f"Local sandbox listening on {_url(sock)}{where}")
    if args.token is None:
        print(f"Token (generated, shown once): {token}")
    print("Processes run as your user. Press Ctrl-C to stop; that kills every process started here.")
    sys.stdout.flush()
    server = Server(
        make_config(app, log_requests=args.log_requests, log_config=log_config(LOGGING_CONFIG)),
        before_shutdown=lambda: end_streams(app),
    )
    hung_up = False

    def on_hangup(sig: int, frame: FrameType | None) -> None:
        # Closing the terminal: stop like on SIGTERM (uvicorn handles SIGINT and SIGTERM itself).
        nonlocal hung_up
        hung_up = True
        server.should_exit = True

    previous = signal.signal(signal.SIGHUP, on_hangup)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        return 130
    finally:
        signal.signal(signal.SIGHUP, previous)
        sock.close()
    return 128 + signal.SIGHUP if hung_up else 0
