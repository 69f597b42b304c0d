"""Running one parsed command: the client from SANDBOX and the key, and errors as exit codes.

Every expected failure becomes one line on stderr that names the problem and the fix, and
a documented exit code (see ``tensorlake-sandbox --help``); no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO, NoReturn

from ._parser import (
    EXIT_AUTH,
    EXIT_DELIVERY_UNKNOWN,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_NOT_WRITABLE,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
)

if TYPE_CHECKING:
    from tensorlake_sandbox import SandboxClient

__all__ = ["CliError", "fail", "make_client", "run_guarded", "unbuffered_stdin"]


class CliError(Exception):
    """An expected failure: ``message`` is printed as is, the process exits with ``code``."""

    def __init__(self, message: str, code: int = EXIT_ERROR):
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    raise CliError(message, code)


def unbuffered_stdin() -> BinaryIO:
    """This process's stdin as an unbuffered binary file (closing it leaves fd 0 open).

    ``sys.stdin.buffer`` holds a lock while it reads: a reader thread still blocked in it
    when the command exits makes the interpreter abort at shutdown. An unbuffered file
    has no such lock, and its ``read`` returns whatever a pipe or terminal has.
    """
    return open(sys.stdin.fileno(), "rb", buffering=0, closefd=False)


def _read_key_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            key = f.read().strip()
    except OSError as exc:
        fail(f"cannot read the API key file {path!r}: {exc.strerror or exc}", EXIT_USAGE)
    if not key:
        fail(f"the API key file {path!r} is empty", EXIT_USAGE)
    return key


def make_client(args: argparse.Namespace) -> SandboxClient:
    """The client for SANDBOX (a name or a URL), with the key from --api-key-file or the environment."""
    from tensorlake_sandbox import API_KEY_ENV, sandbox_client

    key = _read_key_file(args.api_key_file) if args.api_key_file else os.environ.get(API_KEY_ENV)
    if not key:
        fail(f"no API key: set {API_KEY_ENV} or pass --api-key-file PATH", EXIT_USAGE)
    if args.timeout is not None and args.timeout <= 0:
        fail("--timeout must be a positive number of seconds", EXIT_USAGE)
    target = args.sandbox
    try:
        if "://" in target:
            return sandbox_client(base_url=target, api_key=key, timeout=args.timeout)
        return sandbox_client(target, api_key=key, timeout=args.timeout)
    except (ValueError, TypeError) as exc:
        fail(str(exc), EXIT_USAGE)


def _describe(error: BaseException, args: argparse.Namespace) -> CliError:
    """The one-line message and exit code for an error from the sandbox or the network."""
    import httpx

    from tensorlake_sandbox import (
        AuthenticationError,
        DeliveryUnknownError,
        ProcessNotFoundError,
        SandboxUnavailableError,
        StdinNotWritableError,
    )

    pid = getattr(args, "pid", None)
    who = f"process {pid}" if pid is not None else "the sandbox"
    delivered = getattr(error, "bytes_delivered", None)
    sent = f" ({delivered} bytes were delivered before it)" if delivered else ""
    if isinstance(error, StdinNotWritableError):
        return CliError(
            f"{who}: stdin is not writable (not a pipe, already closed, or the process exited); "
            f"start it with stdin_mode=pipe{sent}",
            EXIT_NOT_WRITABLE,
        )
    if isinstance(error, ProcessNotFoundError):
        return CliError(
            f"{who}: not found in {args.sandbox}; list processes with: tensorlake-sandbox ps {args.sandbox}",
            EXIT_NOT_FOUND,
        )
    if isinstance(error, AuthenticationError):
        return CliError(
            f"{args.sandbox}: authentication failed ({error}); check TENSORLAKE_API_KEY or --api-key-file",
            EXIT_AUTH,
        )
    if isinstance(error, DeliveryUnknownError):
        return CliError(
            f"{who}: delivery unknown: {error.message}{sent}; the last "
            f"{error.request_bytes or 'request'} bytes may or may not have arrived, so nothing was resent",
            EXIT_DELIVERY_UNKNOWN,
        )
    # Transport failures are SandboxUnavailableErrors too, and still the httpx type: first.
    if isinstance(error, httpx.TimeoutException):
        return CliError(
            f"{args.sandbox}: no answer within the timeout ({error}){sent}; raise --timeout?",
            EXIT_UNAVAILABLE,
        )
    if isinstance(error, httpx.TransportError):
        return CliError(f"{args.sandbox}: cannot reach the sandbox: {error}{sent}", EXIT_UNAVAILABLE)
    if isinstance(error, SandboxUnavailableError):
        return CliError(
            f"{args.sandbox}: sandbox unavailable: {error}{sent}; try again later", EXIT_UNAVAILABLE
        )
    return CliError(f"{who}: {error}{sent}", EXIT_ERROR)


def run_guarded(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run ``command``; turn expected failures into a message on stderr and an exit code."""
    import httpx

    from tensorlake_sandbox import SandboxError

    try:
        try:
            return command(args)
        except (SandboxError, httpx.TransportError) as exc:
            raise _describe(exc, args) from exc
    except CliError as exc:
        print(f"tensorlake-sandbox: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt as exc:
        delivered = getattr(exc, "bytes_delivered", None)
        done = (
            "" if delivered is None else f": {delivered} bytes reached stdin; the last request may not have"
        )
        print(f"tensorlake-sandbox: interrupted{done}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout closed early (e.g. piped into head): not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
