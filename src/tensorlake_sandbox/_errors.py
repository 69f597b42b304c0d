"""One error tree, shaped like openai's (README, "Errors"), and its two tables: `error_for_status`
for statuses, `transport_error` for httpx's transport failures. No class is made at run time."""

from __future__ import annotations

import contextlib
import json
from http.client import responses
from typing import Any

import httpx

from tensorlake_api_client.types import Response


class SandboxError(Exception):
    """An error from a sandbox's API, or from talking to it: ``status_code`` (None without an
    answer), the server's ``code`` and ``message``; write errors add the fields of README, "Errors"."""

    bytes_delivered: int | None = None
    request_bytes: int | None = None
    request_partly_written: bool | None = None

    def __init__(self, message: str, *, status_code: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code

    def __str__(self) -> str:
        status = f"HTTP {self.status_code}" if self.status_code is not None else None
        prefix = " ".join(p for p in (status, self.code) if p)
        return f"{prefix}: {self.message}" if prefix else self.message

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword arguments survive pickling (an exception pickles its positional args only).
        return (type(self).__new__, (type(self), self.message), self.__dict__)


class SandboxStatusError(SandboxError):
    """The sandbox (or its proxy) answered with an error status; ``response`` is that `httpx.Response`."""

    status_code: int
    response: httpx.Response | None = None


class BadRequestError(SandboxStatusError):
    """400: the sandbox refused the request as sent."""


class StdinNotWritableError(BadRequestError):
    """400 on a stdin write or close: stdin is not an open pipe (start with ``stdin_mode="pipe"``)."""


class SpawnError(BadRequestError):
    """The command cannot be started (no such program, ...): 400 ``SPAWN_FAILED``, or 500 on a start."""


class AuthenticationError(SandboxStatusError):
    """401/403: the API key is missing, wrong, or not allowed to use this sandbox."""


class ProcessNotFoundError(SandboxStatusError):
    """404: no process with this PID in this sandbox."""


class TerminalNotFoundError(ProcessNotFoundError):
    """404 on ``/api/v1/pty/...``: no PTY session with this ID (killed, or removed after exiting)."""


class PayloadTooLargeError(SandboxStatusError):
    """413: one request body was larger than the sandbox accepts. Nothing was written."""


class TooManyTerminalsError(SandboxStatusError):
    """429 ``TOO_MANY_SESSIONS``: the sandbox has 64 PTY sessions; kill one first."""


class SandboxUnavailableError(SandboxStatusError):
    """502/503/504: the sandbox proxy could not get an answer from the sandbox."""


class SandboxConnectionError(SandboxError):
    """No complete answer arrived; ``may_have_been_sent`` is False only when no byte of it left."""

    def __init__(self, message: str, *, may_have_been_sent: bool = True) -> None:
        super().__init__(message)
        self.may_have_been_sent = may_have_been_sent


class SandboxTimeoutError(SandboxConnectionError):
    """No answer in time. ``may_have_been_sent`` is False for a connect or pool timeout."""


class DeliveryUnknownError(SandboxError):
    """A write that may or may not have reached the process: resending could deliver it twice."""


class TerminalClosedError(SandboxError):
    """The terminal's websocket closed without an exit code (``close_code``, ``reason``)."""

    def __init__(self, message: str, *, close_code: int | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.close_code = close_code
        self.reason = reason


class OutputLostError(SandboxError):
    """Output lines were dropped before being read (``missing``, ``received``, ``stream``)."""

    def __init__(self, message: str, *, missing: int | None, received: int, stream: str) -> None:
        super().__init__(message)
        self.missing = missing
        self.received = received
        self.stream = stream


# The httpx failures that happen before any byte of the request left.
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
)


def transport_error(exc: httpx.TransportError) -> SandboxConnectionError:
    """The `SandboxConnectionError` / `SandboxTimeoutError` for an httpx transport failure (raise
    it ``from exc``). The message names the sandbox's origin when the request is known."""
    cls = SandboxTimeoutError if isinstance(exc, httpx.TimeoutException) else SandboxConnectionError
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    with contextlib.suppress(RuntimeError):  # no request attached
        url = exc.request.url  # the sandbox's origin only: a path or query may hold a token
        message = f"{message} ({url.scheme}://{url.netloc.decode('ascii', 'replace')})"
    return cls(message, may_have_been_sent=not isinstance(exc, _NOT_SENT))


# The error table: (statuses, server code, where) -> class, first match wins. No statuses: any;
# code None: any, "": none sent. Where: "start" a POST (or unknown method) that starts a program
# (a 500 there is a failed start on Tensorlake's daemon), "stdin" a stdin write or close (or an
# unknown path), "pty" a terminal's path, None anywhere.
_TABLE: tuple[tuple[tuple[int, ...], str | None, str | None, type[SandboxStatusError]], ...] = (
    ((), "SPAWN_FAILED", None, SpawnError),
    ((500,), "", "start", SpawnError),
    ((404,), None, "pty", TerminalNotFoundError),
    ((429,), None, "pty", TooManyTerminalsError),
    ((429,), "TOO_MANY_SESSIONS", None, TooManyTerminalsError),
    ((400,), "STDIN_NOT_WRITABLE", None, StdinNotWritableError),
    ((400,), "", "stdin", StdinNotWritableError),
    ((400,), None, None, BadRequestError),
    ((401, 403), None, None, AuthenticationError),
    ((404,), None, None, ProcessNotFoundError),
    ((413,), None, None, PayloadTooLargeError),
    ((502, 503, 504), None, None, SandboxUnavailableError),
)


def _class_for(
    status: int, code: str | None, path: str | None, method: str | None
) -> type[SandboxStatusError]:
    path = None if path is None else path.rstrip("/")
    where = {
        None: True,
        "start": path in ("/api/v1/processes", "/api/v1/processes/run", "/api/v1/pty")
        and method in (None, "POST"),
        "stdin": path is None or path.endswith(("/stdin", "/stdin/close")),
        "pty": path is not None and (path + "/").startswith("/api/v1/pty/"),
    }
    for statuses, row_code, row_where, cls in _TABLE:
        if (status in statuses or not statuses) and row_code in (None, code or "") and where[row_where]:
            return cls
    return SandboxStatusError


def _parse_body(content: bytes) -> tuple[str | None, str | None]:
    """(message, code) from an error body, tolerating anything a proxy might send."""
    try:
        body: Any = json.loads(content)
    except ValueError:  # UnicodeDecodeError included
        body = None
    if not isinstance(body, dict):  # a proxy's page, say: its first words
        body = {"error": " ".join(content[:300].decode("utf-8", "replace").split())}
    found = [body.get("error", body.get("message")), body.get("code")]
    message, code = [v if isinstance(v, str) and v else None for v in found]
    return message, code


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
    cls = _class_for(status, code, path, method)
    err = cls(message or responses.get(status, "unexpected status"), status_code=status, code=code)
    err.response = response
    return err


def raise_for_response(response: Response[Any] | httpx.Response) -> None:
    """Raise the typed `SandboxError` for an error response (what the generated ``*_detailed``
    functions return, or an ``httpx.Response``); return None for a 2xx."""
    if 200 <= int(response.status_code) < 300:
        return
    if isinstance(response, httpx.Response):
        response.read()
        raise error_for_response(response)
    raise error_for_status(int(response.status_code), response.content)


def error_for_response(response: httpx.Response) -> SandboxStatusError:
    """The typed error for an error `httpx.Response` whose body has been read."""
    try:
        path, method = response.request.url.path, response.request.method
    except RuntimeError:  # a response built without its request
        return error_for_status(response.status_code, response.content, response=response)
    return error_for_status(
        response.status_code, response.content, path=path, method=method, response=response
    )
