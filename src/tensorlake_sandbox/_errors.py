"""One error tree, shaped like openai's, and the rules that fill it.

::

    SandboxError
    ├── SandboxStatusError        the sandbox answered with an error status (``response``)
    │   ├── BadRequestError (400) ── StdinNotWritableError, SpawnError
    │   ├── AuthenticationError (401, 403)
    │   ├── ProcessNotFoundError (404) ── TerminalNotFoundError
    │   ├── PayloadTooLargeError (413)
    │   ├── TooManyTerminalsError (429)
    │   └── SandboxUnavailableError (502, 503, 504)
    ├── SandboxConnectionError    no complete answer arrived (``may_have_been_sent``)
    │   └── SandboxTimeoutError
    ├── DeliveryUnknownError      a write that may or may not have arrived
    └── TerminalClosedError       a terminal's websocket closed without an exit code

`error_for_status` maps a status (and the server's ``code``) to its class; `transport_error`
is the table from httpx's transport exceptions to the connection errors. Every class is
defined here, none is made at run time.
"""

from __future__ import annotations

import contextlib
import json
from http import HTTPStatus
from typing import Any

import httpx

from tensorlake_api_client.types import Response

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "DeliveryUnknownError",
    "OutputLostError",
    "PayloadTooLargeError",
    "ProcessNotFoundError",
    "SandboxConnectionError",
    "SandboxError",
    "SandboxStatusError",
    "SandboxTimeoutError",
    "SandboxUnavailableError",
    "SpawnError",
    "StdinNotWritableError",
    "TerminalClosedError",
    "TerminalNotFoundError",
    "TooManyTerminalsError",
    "error_for_response",
    "error_for_status",
    "raise_for_response",
    "transport_error",
]


class SandboxError(Exception):
    """An error from a sandbox's API, or from talking to it.

    ``status_code`` is the HTTP status (None when no response arrived), ``code`` the
    server's machine-readable code (e.g. ``NOT_FOUND``) when it sent one, and
    ``message`` the server's (or our) explanation.

    A failed stdin write (`write_stdin` and friends) also sets ``bytes_delivered``: the
    bytes of that call confirmed written before the failing request, and
    ``request_bytes``: the size of the failing request. Resume from ``bytes_delivered``
    (after a `DeliveryUnknownError`, the next ``request_bytes`` may or may not have
    arrived). Both are None on errors from other calls.

    ``request_partly_written`` is True when the sandbox refused the failing request after
    it may already have written part of it to the process (a 400 or 404 on a write: the
    process closed its stdin or exited while reading), False when it certainly wrote
    none of it (413, 401/403), None when not known or not a write.
    """

    bytes_delivered: int | None = None
    request_bytes: int | None = None
    request_partly_written: bool | None = None

    def __init__(self, message: str, *, status_code: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code

    def __str__(self) -> str:
        prefix = f"HTTP {self.status_code}" if self.status_code is not None else ""
        if self.code:
            prefix = f"{prefix} {self.code}".strip()
        return f"{prefix}: {self.message}" if prefix else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword arguments survive pickling (an exception pickles its positional args only).
        return (_rebuild, (type(self), self.message, self.__dict__))


def _rebuild(cls: type[SandboxError], message: str, state: dict[str, Any]) -> SandboxError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class SandboxStatusError(SandboxError):
    """The sandbox (or its proxy) answered with an error status.

    ``response`` is that `httpx.Response` (its body read), when the error came from one.
    """

    status_code: int
    response: httpx.Response | None = None


class BadRequestError(SandboxStatusError):
    """400: the sandbox refused the request as sent."""


class StdinNotWritableError(BadRequestError):
    """400 on a stdin write or close: the process's stdin is not an open pipe.

    Start the process with ``stdin_mode="pipe"``; a pipe that was closed, or a process
    that has exited, cannot be written to again.
    """


class SpawnError(BadRequestError):
    """The sandbox could not start the command: no such program, not executable, and the like.

    The same error whatever started it (`start`, `run`, `Terminal.open`, or a generated
    ``sandbox_process_start`` / ``sandbox_process_run`` / ``sandbox_pty_create`` call): the
    local sandbox answers 400 ``SPAWN_FAILED``, Tensorlake's daemon 500 on a start path.
    """


class AuthenticationError(SandboxStatusError):
    """401/403: the API key is missing, wrong, or not allowed to use this sandbox."""


class ProcessNotFoundError(SandboxStatusError):
    """404: no process with this PID in this sandbox."""


class TerminalNotFoundError(ProcessNotFoundError):
    """404 on a terminal: no PTY session with this ID in this sandbox (it was killed, or removed
    after exiting). Raised for every ``/api/v1/pty`` request, generated calls included."""


class PayloadTooLargeError(SandboxStatusError):
    """413: one request body was larger than the sandbox accepts. Nothing was written."""


class TooManyTerminalsError(SandboxStatusError):
    """429 ``TOO_MANY_SESSIONS``: the sandbox has 64 PTY sessions; kill one first."""


class SandboxUnavailableError(SandboxStatusError):
    """502/503/504: the sandbox proxy could not get an answer from the sandbox."""


class SandboxConnectionError(SandboxError):
    """No complete answer arrived: the connection failed or broke (refused, reset, closed
    early, an answer that breaks HTTP framing, a connection out of step).

    ``may_have_been_sent`` is False only when the connection failed before any byte of the
    request left; the httpx exception it replaces is its ``__cause__``.
    """

    def __init__(self, message: str, *, may_have_been_sent: bool = True) -> None:
        super().__init__(message)
        self.may_have_been_sent = may_have_been_sent


class SandboxTimeoutError(SandboxConnectionError):
    """No answer in time. ``may_have_been_sent`` is False for a connect or pool timeout."""


class TerminalClosedError(SandboxError):
    """The terminal's websocket closed without an exit code.

    ``close_code`` is the websocket close code: 1001 when the session was killed (or timed
    out, or the sandbox shut down), 1008 for a policy violation, 1006 when the connection
    dropped. The session may still be running after a dropped connection: reattach with
    its token.
    """

    def __init__(self, message: str, *, close_code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.close_code = close_code
        self.reason = reason


# The error table for every transport under a client (ours in `_transport`, httpx's for
# websockets and proxies): which httpx failures happen before any byte of the request left.
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)


def transport_error(exc: httpx.TransportError) -> SandboxConnectionError:
    """The `SandboxConnectionError` / `SandboxTimeoutError` for an httpx transport failure
    (raise it ``from exc``). The message names the sandbox's origin when the request is known."""
    cls = SandboxTimeoutError if isinstance(exc, httpx.TimeoutException) else SandboxConnectionError
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    with contextlib.suppress(RuntimeError):  # no request attached
        url = exc.request.url  # the sandbox's origin only: a path or query may hold a token
        message = f"{message} ({url.scheme}://{url.netloc.decode('ascii', 'replace')})"
    return cls(message, may_have_been_sent=not isinstance(exc, _NOT_SENT))


class DeliveryUnknownError(SandboxError):
    """A write whose bytes may or may not have reached the process.

    Raised instead of retrying when resending could deliver the same bytes twice (a
    timeout or a dropped connection once the body may have left, a 502 or 504).
    """


# -- output that could not be delivered whole (issue 21) -----------------------------------------


class OutputLostError(SandboxError):
    """Output the caller asked for is no longer available: lines were dropped before being read.

    ``missing`` is how many lines are missing (None when the sandbox cannot tell, e.g. one
    that sends no line positions), ``received`` how many lines arrived before the gap, and
    ``stream`` which output it was (``stdout``, ``stderr`` or ``output``). Raised instead of
    returning a result with lines silently missing.
    """

    def __init__(self, message: str, *, missing: int | None, received: int, stream: str) -> None:
        super().__init__(message)
        self.missing = missing
        self.received = received
        self.stream = stream


_STDIN_NOT_WRITABLE = "STDIN_NOT_WRITABLE"
_SPAWN_FAILED = "SPAWN_FAILED"
# The paths whose POST starts a program: a 500 answering that POST is a failed start (Tensorlake's
# daemon); a 500 on another method there (listing processes, say) is not.
_START_PATHS = ("/api/v1/processes", "/api/v1/processes/run", "/api/v1/pty")

_BY_STATUS: dict[int, type[SandboxStatusError]] = {
    401: AuthenticationError,
    403: AuthenticationError,
    404: ProcessNotFoundError,
    413: PayloadTooLargeError,
    502: SandboxUnavailableError,
    503: SandboxUnavailableError,
    504: SandboxUnavailableError,
}
# On a terminal's path (``/api/v1/pty/...``), whatever the code.
_TERMINAL_BY_STATUS: dict[int, type[SandboxStatusError]] = {
    404: TerminalNotFoundError,
    429: TooManyTerminalsError,
}


def _class_for(
    status: int, code: str | None, path: str | None, method: str | None
) -> type[SandboxStatusError]:
    starts = path is not None and path.rstrip("/") in _START_PATHS and method in (None, "POST")
    if code == _SPAWN_FAILED or (status == 500 and code is None and starts):
        return SpawnError
    terminal = path is not None and (path.rstrip("/") + "/").startswith("/api/v1/pty/")
    if terminal and status in _TERMINAL_BY_STATUS:
        return _TERMINAL_BY_STATUS[status]
    if status == 400:
        # A 400 without a code is a closed stdin when it answers a stdin write (or the path is unknown).
        on_stdin = path is None or path.rstrip("/").endswith(("/stdin", "/stdin/close"))
        stdin = code == _STDIN_NOT_WRITABLE or (code is None and on_stdin)
        return StdinNotWritableError if stdin else BadRequestError
    if status == 429 and code == "TOO_MANY_SESSIONS":
        return TooManyTerminalsError
    return _BY_STATUS.get(status, SandboxStatusError)


def _parse_body(content: bytes) -> tuple[str | None, str | None]:
    """(message, code) from an error body, tolerating anything a proxy might send."""
    try:
        body: Any = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        message = body.get("error", body.get("message"))
        code = body.get("code")
        return (
            message if isinstance(message, str) and message else None,
            code if isinstance(code, str) and code else None,
        )
    text = content[:300].decode("utf-8", "replace").strip()
    return (" ".join(text.split()) or None), None


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "unexpected status"


def error_for_status(
    status: int,
    content: bytes = b"",
    *,
    path: str | None = None,
    method: str | None = None,
    response: httpx.Response | None = None,
) -> SandboxStatusError:
    """The typed error for one error response (the body may be anything, even empty); ``path``
    and ``method`` (when known) say which resource and operation it answers."""
    message, code = _parse_body(content)
    err = _class_for(status, code, path, method)(message or _reason(status), status_code=status, code=code)
    err.response = response
    return err


def raise_for_response(response: Response[Any] | httpx.Response) -> None:
    """Raise the typed `SandboxError` for an error response; return None for a 2xx.

    Takes what the generated ``*_detailed`` functions return, or an ``httpx.Response``.
    """
    status = int(response.status_code)
    if 200 <= status < 300:
        return
    if isinstance(response, httpx.Response):
        response.read()
        raise error_for_response(response)
    raise error_for_status(status, response.content)


def error_for_response(response: httpx.Response) -> SandboxStatusError:
    """The typed error for an error `httpx.Response` whose body has been read."""
    try:
        request: httpx.Request | None = response.request
    except RuntimeError:  # a response built without its request
        request = None
    return error_for_status(
        response.status_code,
        response.content,
        path=request.url.path if request is not None else None,
        method=request.method if request is not None else None,
        response=response,
    )
