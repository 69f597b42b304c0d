"""Typed errors, and the one rule that maps an HTTP status (and the server's `code`) to them."""

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
    "SandboxTimeoutError",
    "SandboxUnavailableError",
    "StdinNotWritableError",
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


class BadRequestError(SandboxError):
    """400: the sandbox refused the request as sent."""


class StdinNotWritableError(BadRequestError):
    """400 on a stdin write or close: the process's stdin is not an open pipe.

    Start the process with ``stdin_mode="pipe"``; a pipe that was closed, or a process
    that has exited, cannot be written to again.
    """


class AuthenticationError(SandboxError):
    """401/403: the API key is missing, wrong, or not allowed to use this sandbox."""


class ProcessNotFoundError(SandboxError):
    """404: no process with this PID in this sandbox."""


class PayloadTooLargeError(SandboxError):
    """413: one request body was larger than the sandbox accepts. Nothing was written."""


class SandboxUnavailableError(SandboxError):
    """502/503/504: the sandbox proxy could not get an answer from the sandbox.

    With ``status_code`` None: the sandbox could not be reached at all (the connection
    failed before anything was sent).
    """


class _TransportFailure(SandboxUnavailableError):
    """The request failed below HTTP: no complete answer arrived."""

    may_have_been_sent: bool = True
    """False only when the connection failed before any byte of the request left."""

    def __reduce__(self) -> tuple[object, ...]:
        # The class is made per httpx type (see `transport_error`): rebuilt by name when unpickled.
        httpx_type = next(c for c in type(self).__mro__ if c.__module__.startswith("httpx"))
        return (_rebuild, (httpx_type.__name__, self.message, self.may_have_been_sent))


class SandboxConnectionError(_TransportFailure):
    """The connection failed or broke (refused, reset, closed early, a malformed answer).

    ``may_have_been_sent`` says whether any of the request may have reached the sandbox.
    Each instance is also the `httpx` exception it replaces (``httpx.ConnectError``,
    ``httpx.ReadError``, ``httpx.RemoteProtocolError``, ...), so ``except httpx.ConnectError``
    keeps working.
    """


class SandboxTimeoutError(_TransportFailure):
    """No answer in time. Also the `httpx` timeout it replaces (``httpx.ReadTimeout``, ...).

    ``may_have_been_sent`` is False for a connect or pool timeout, True otherwise.
    """


# httpx failures raised before any byte of the request was sent.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
_mixed: dict[type[httpx.TransportError], type[_TransportFailure]] = {}


def transport_error(exc: httpx.TransportError) -> SandboxError:
    """The `SandboxConnectionError` / `SandboxTimeoutError` for an httpx transport failure.

    Its class subclasses both, so it is caught as either; the original is its ``__cause__``
    (set by ``raise ... from exc``).
    """
    httpx_type = type(exc)
    cls = _mixed.get(httpx_type)
    if cls is None:
        base = SandboxTimeoutError if isinstance(exc, httpx.TimeoutException) else SandboxConnectionError
        cls = _mixed[httpx_type] = type(base.__name__, (base, httpx_type), {"__module__": __name__})
    err = cls(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    err.may_have_been_sent = not isinstance(exc, _NOT_SENT)
    if isinstance(err, httpx.RequestError):
        with contextlib.suppress(RuntimeError):  # no request attached
            err.request = exc.request
    return err


def _rebuild(httpx_name: str, message: str, may_have_been_sent: bool) -> SandboxError:
    err = transport_error(getattr(httpx, httpx_name)(message))
    err.message = message
    err.args = (message,)
    err.may_have_been_sent = may_have_been_sent  # type: ignore[attr-defined]
    return err


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


def _is_stdin_path(path: str) -> bool:
    return path.rstrip("/").endswith(("/stdin", "/stdin/close"))


def _class_for(status: int, code: str | None, path: str | None) -> type[SandboxError]:
    if status == 400:
        if code == _STDIN_NOT_WRITABLE:
            return StdinNotWritableError
        if path is not None:
            return StdinNotWritableError if _is_stdin_path(path) and code is None else BadRequestError
        return StdinNotWritableError if code is None else BadRequestError
    if status in (401, 403):
        return AuthenticationError
    if status == 404:
        return ProcessNotFoundError
    if status == 413:
        return PayloadTooLargeError
    if status in (502, 503, 504):
        return SandboxUnavailableError
    return SandboxError


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


def error_for_status(status: int, content: bytes = b"", *, path: str | None = None) -> SandboxError:
    """The typed error for one error response (the body may be anything, even empty)."""
    message, code = _parse_body(content)
    cls = _class_for(status, code, path)
    return cls(message or _reason(status), status_code=status, code=code)


def raise_for_response(response: Response[Any] | httpx.Response) -> None:
    """Raise the typed `SandboxError` for an error response; return None for a 2xx.

    Takes what the generated ``*_detailed`` functions return, or an ``httpx.Response``.
    """
    status = int(response.status_code)
    if 200 <= status < 300:
        return
    if isinstance(response, httpx.Response):
        response.read()
        path = response.request.url.path if response._request is not None else None
        raise error_for_status(status, response.content, path=path)
    raise error_for_status(status, response.content)
