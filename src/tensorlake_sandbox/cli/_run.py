"""Running one parsed command: the client from SANDBOX and the key, and errors as exit codes.

Every expected failure becomes one line on stderr that names the problem and the fix, and
a documented exit code (see ``tensorlake-sandbox --help``); no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO, Literal, NoReturn, TextIO

from ._parser import (
    EXIT_AUTH,
    EXIT_BROKEN_PIPE,
    EXIT_CANNOT_RUN,
    EXIT_COMMAND_NOT_FOUND,
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

__all__ = [
    "WRITES_STDOUT",
    "CliError",
    "OutputError",
    "check_seconds",
    "fail",
    "in_shell_words",
    "make_client",
    "parse_env",
    "require_stdout",
    "run_guarded",
    "say",
    "stdio_closed",
    "stdio_fd",
    "unbuffered_stdin",
    "write_out",
]

# The commands that print to stdout: refused when it is closed, before anything is sent.
WRITES_STDOUT = frozenset({"exec", "logs", "ps", "run", "shell", "start"})


class CliError(Exception):
    """An expected failure: ``message`` is printed as is, the process exits with ``code``."""

    def __init__(self, message: str, code: int = EXIT_ERROR):
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    raise CliError(message, code)


def unbuffered_stdin() -> BinaryIO | None:
    """This process's stdin as an unbuffered binary file (closing it leaves fd 0 open).

    ``sys.stdin.buffer`` holds a lock while it reads: a reader thread still blocked in it
    when the command exits makes the interpreter abort at shutdown. An unbuffered file
    has no such lock, and its ``read`` returns whatever a pipe or terminal has.

    None when stdin is closed (``<&-``): Python then sets ``sys.stdin`` to None, and fd 0 may
    already be a socket or file this process opened since, so it is never read.
    """
    fd = stdio_fd(sys.stdin)
    return None if fd is None else open(fd, "rb", buffering=0, closefd=False)


def stdio_fd(stream: TextIO | None) -> int | None:
    """The descriptor of ``sys.stdin``/``sys.stdout``; None when closed (``<&-``, ``>&-``) or not a file."""
    if stream is None:
        return None
    try:
        fd = stream.fileno()
        os.fstat(fd)
    except (OSError, ValueError):
        return None
    return fd


def stdio_closed(stream: TextIO | None) -> bool:
    """True when the shell closed this stream (``>&-``); a stream that is not a file is open."""
    if stream is None:
        return True
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return False  # a Python-level stream (a test's capture, an embedding program's)
    try:
        os.fstat(fd)
    except OSError:
        return True
    return False


class OutputError(CliError):
    """This command could not write its output (``>/dev/full``, an I/O error)."""


def write_out(stream: Literal["stdout", "stderr"], text: str) -> None:
    """``text`` to local stdout or stderr, flushed at once; a failure to write is one OutputError.

    A closed pipe stays a BrokenPipeError: run_guarded exits 141 for it, like a process killed
    by SIGPIPE. A closed stderr (``2>&-``) takes nothing: the user discarded it.
    """
    out = sys.stderr if stream == "stderr" else sys.stdout
    if out is None:
        if stream == "stderr":
            return
        fail("cannot write the output: stdout is closed", EXIT_USAGE)
    try:
        out.write(text)
        out.flush()
    except BrokenPipeError:
        raise
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise OutputError(f"cannot write the output to {stream}: {reason}; stopped", EXIT_ERROR) from exc


def require_stdout(args: argparse.Namespace) -> None:
    """Refuse, before anything is sent, to run a command that prints with stdout closed."""
    if stdio_closed(sys.stdout):
        fail(
            f"stdout is closed, so {args.command} has nowhere to print; redirect it instead "
            "(e.g. >/dev/null to discard the output)",
            EXIT_USAGE,
        )


def say(message: str) -> None:
    """One line on stderr; nothing when stderr is closed or broken (never onto stdout)."""
    if sys.stderr is None:
        return
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(message + "\n")
        sys.stderr.flush()


def _read_key_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            key = f.read().strip()
    except OSError as exc:
        fail(f"cannot read the API key file {path!r}: {exc.strerror or exc}", EXIT_USAGE)
    except UnicodeDecodeError:
        fail(
            f"the API key file {path!r} is not text (it has bytes that are not UTF-8); "
            "it must hold only the key",
            EXIT_USAGE,
        )
    if not key:
        fail(f"the API key file {path!r} is empty", EXIT_USAGE)
    return key


def check_seconds(value: float | None, option: str) -> None:
    """A positive, finite number of seconds (argparse's float() accepts nan and inf)."""
    if value is not None and (not math.isfinite(value) or value <= 0):
        fail(f"{option} must be a positive number of seconds, not {value}", EXIT_USAGE)


# Python's words in the library's messages, and what a shell user types instead.
_PYTHON_WORDS = [
    (
        re.compile(
            r"[.;] Pass the sandbox's ID or name alone, or pass base_url= with its ingress_endpoint\.?"
        ),
        "",
    ),
    (re.compile(r"\bbase_url\b=?"), "sandbox URL"),
    (re.compile(r"\bapi_key=?"), "--api-key-file"),
]


def in_shell_words(message: str) -> str:
    for pattern, replacement in _PYTHON_WORDS:
        message = pattern.sub(replacement, message)
    return message


def _looks_like_an_address(target: str) -> bool:
    """host, host:port, an IP address: something that is a URL without its scheme."""
    if any(c in target for c in "/@?#") or any(c.isspace() for c in target):
        return False
    return "." in target or ":" in target or target.lower() == "localhost"


def _url_hint(target: str) -> str:
    from tensorlake_sandbox._urls import is_loopback_host

    host = target.rsplit(":", 1)[0] if target.count(":") == 1 else target
    scheme = "http" if is_loopback_host(host.strip("[]")) else "https"
    return f"{scheme}://{target}"


def make_client(args: argparse.Namespace) -> SandboxClient:
    """The client for SANDBOX (a name or a URL), with the key from --api-key-file or the environment."""
    import httpx

    from tensorlake_sandbox import sandbox_client
    from tensorlake_sandbox._client import API_KEY_ENV

    check_seconds(getattr(args, "timeout", None), "--timeout")
    key = _read_key_file(args.api_key_file) if args.api_key_file else os.environ.get(API_KEY_ENV)
    if not key:
        fail(f"no API key: set {API_KEY_ENV} or pass --api-key-file PATH", EXIT_USAGE)
    timeout = getattr(args, "request_timeout", None) or args.timeout
    target = args.sandbox
    try:
        if "://" in target:
            client = sandbox_client(base_url=target, api_key=key, timeout=timeout)
        else:
            client = sandbox_client(target, api_key=key, timeout=timeout)
        client.get_httpx_client()  # httpx parses the URL only here
        return client
    except (ValueError, TypeError, httpx.InvalidURL) as exc:
        if "API key" in str(exc):
            where = f"the file {args.api_key_file!r}" if args.api_key_file else API_KEY_ENV
            fail(f"{in_shell_words(str(exc)).split(' (checked')[0]} (the key from {where})", EXIT_USAGE)
        if "://" in target:
            message = in_shell_words(str(exc))
            if isinstance(exc, httpx.InvalidURL):
                message = f"invalid sandbox URL {target!r}: {exc}"
            fail(message, EXIT_USAGE)
        if _looks_like_an_address(target):
            fail(
                f"{target!r} is not a sandbox name; for a sandbox at that address, write its URL "
                f"whole: {_url_hint(target)}",
                EXIT_USAGE,
            )
        fail(
            f"{in_shell_words(str(exc))}; give the sandbox's ID or name, or its URL "
            "(e.g. http://127.0.0.1:8500 for a local sandbox)",
            EXIT_USAGE,
        )


# The sandbox's origin at the end of a transport error's message: the line names SANDBOX already.
_ORIGIN = re.compile(r" \(https?://[^\s()]+\)$")


def _unreachable_hint(target: str) -> str:
    from urllib.parse import urlsplit

    from tensorlake_sandbox._urls import is_loopback_host

    if "://" in target:
        parts = urlsplit(target)
        if is_loopback_host(parts.hostname or ""):
            return f"is `tensorlake-sandbox local` running, on port {parts.port or 80}?"
        return "is the URL right, and is the sandbox running?"
    return "is the sandbox name right, and is the sandbox running?"


# The sandbox refuses to start a program with "cannot start 'CMD': <strerror>" (400 for a
# process, 500 for a terminal); a shell says 127 for "not found" and 126 for "cannot run".
_NOT_FOUND_REASONS = ("no such file or directory", "not found")


def _cannot_start(error: BaseException, args: argparse.Namespace) -> CliError | None:
    from tensorlake_sandbox import SandboxError

    message = error.message if isinstance(error, SandboxError) else ""
    words = getattr(args, "argv", None)
    if not message.startswith("cannot start ") or not words:
        return None
    reason = message.partition(": ")[2] or message
    if any(r in reason.lower() for r in _NOT_FOUND_REASONS):
        return CliError(f"{words[0]}: command not found in the sandbox ({reason})", EXIT_COMMAND_NOT_FOUND)
    return CliError(f"{words[0]}: cannot run it in the sandbox ({reason})", EXIT_CANNOT_RUN)


def _terminal_error(error: BaseException, args: argparse.Namespace) -> CliError | None:
    """What went wrong with a terminal session, in its own words (not a process's, not the API key's)."""
    from tensorlake_sandbox import AuthenticationError, TerminalClosedError, TerminalNotFoundError

    session = getattr(args, "attach", None)
    if isinstance(error, TerminalNotFoundError):
        what = f"session {session}" if session else "the terminal session"
        return CliError(f"{what}: not found in {args.sandbox} (it ended, or the ID is wrong)", EXIT_NOT_FOUND)
    if session and isinstance(error, AuthenticationError) and error.status_code == 403:
        return CliError(
            f"session {session}: the sandbox refused its token; pass the token saved at detach "
            "with --token-file PATH or TENSORLAKE_PTY_TOKEN",
            EXIT_AUTH,
        )
    if isinstance(error, TerminalClosedError):
        if error.close_code in (1006, None):
            return CliError(
                f"{args.sandbox}: the connection to the terminal dropped; the session may still be "
                "running (reattach as shown above)",
                EXIT_UNAVAILABLE,
            )
        why = error.reason or f"close code {error.close_code}"
        return CliError(f"{args.sandbox}: session terminated by the sandbox ({why})", EXIT_UNAVAILABLE)
    return None


def _describe(error: BaseException, args: argparse.Namespace) -> CliError:
    """The one-line message and exit code for an error from the sandbox or the network."""
    import httpx

    from tensorlake_sandbox import (
        AuthenticationError,
        DeliveryUnknownError,
        ProcessNotFoundError,
        SandboxConnectionError,
        SandboxTimeoutError,
        SandboxUnavailableError,
        StdinNotWritableError,
    )

    pid = getattr(args, "pid", None)
    if pid is None and (cannot := _cannot_start(error, args)) is not None:
        return cannot
    if (terminal := _terminal_error(error, args)) is not None:
        return terminal
    who = f"process {pid}" if pid is not None else "the sandbox"
    delivered = getattr(error, "bytes_delivered", None)
    sent = f" ({delivered} bytes were delivered before it)" if delivered else ""
    if isinstance(error, StdinNotWritableError):
        return CliError(
            f"{who}: stdin is not writable (not a pipe, already closed, or the process exited); "
            f"start it with a pipe: tensorlake-sandbox start {args.sandbox} --stdin -- CMD{sent}",
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
    if isinstance(error, (SandboxTimeoutError, httpx.TimeoutException)):
        return CliError(
            f"{args.sandbox}: no answer within the timeout ({error}){sent}; raise --timeout?",
            EXIT_UNAVAILABLE,
        )
    if isinstance(error, (SandboxConnectionError, httpx.TransportError)):
        return CliError(
            f"{args.sandbox}: cannot reach the sandbox ({_ORIGIN.sub('', str(error))}){sent}; "
            f"{_unreachable_hint(args.sandbox)}",
            EXIT_UNAVAILABLE,
        )
    if isinstance(error, SandboxUnavailableError):
        return CliError(
            f"{args.sandbox}: sandbox unavailable: {error}{sent}; try again later", EXIT_UNAVAILABLE
        )
    return CliError(f"{who}: {in_shell_words(str(error))}{sent}", EXIT_ERROR)


def run_guarded(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run ``command``; turn expected failures into a message on stderr and an exit code."""
    import httpx

    from tensorlake_sandbox import SandboxError

    try:
        try:
            if getattr(args, "command", None) in WRITES_STDOUT:
                require_stdout(args)
            return command(args)
        except (SandboxError, httpx.TransportError) as exc:
            raise _describe(exc, args) from exc
    except CliError as exc:
        if isinstance(exc, OutputError):
            _discard_stdout()
        say(f"tensorlake-sandbox: {exc}")
        return exc.code
    except KeyboardInterrupt as exc:
        delivered = getattr(exc, "bytes_delivered", None)
        done = (
            "" if delivered is None else f": {delivered} bytes reached stdin; the last request may not have"
        )
        say(f"tensorlake-sandbox: interrupted{done}")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout closed early (e.g. piped into head): not an error worth a traceback. A remote
        # process was killed on the way out (see exec); exit like a process killed by SIGPIPE.
        _discard_stdout()
        return EXIT_BROKEN_PIPE


def _discard_stdout() -> None:
    """Point fd 1 at /dev/null, so the interpreter's last flush of unwritable output is silent."""
    fd = stdio_fd(sys.stdout)
    if fd is None:
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def parse_env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--env {pair!r}: expected KEY=VALUE", EXIT_USAGE)
        env[key] = value
    return env
