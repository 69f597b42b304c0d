"""What the sync and async stdin writers share: argument checks, and the state of one write.

`_Delivery` counts the bytes the sandbox confirmed and decides, through the pure rule in
`classify_failure` (below), what a failed request means: send it again, split it, or raise
an error that says exactly how many bytes were delivered.
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx

from tensorlake_api_client.types import UNSET, Unset

from ._client import SandboxClient
from ._errors import (
    DeliveryUnknownError,
    SandboxConnectionError,
    SandboxError,
    SandboxTimeoutError,
    transport_error,
)
from ._transports._io import on_response

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_RETRY",
    "NOT_FORWARDED_CODES",
    "CloseBudget",
    "Delivery",
    "Outcome",
    "RetryPolicy",
    "TimeoutArg",
    "WriterBase",
    "classify_failure",
]

# Bytes per request at most: the sandbox's limit on one body (2 MiB; a larger body is a 413).
# Writes to one process go one request at a time, so over a network throughput is about one
# chunk per round trip: the largest body the sandbox takes is the fastest (make bench, WAN).
DEFAULT_CHUNK_SIZE = 2 << 20

TimeoutArg = float | httpx.Timeout | None


def check_call(client: object, pid: object, chunk_size: object = DEFAULT_CHUNK_SIZE) -> None:
    if not isinstance(client, SandboxClient):
        raise TypeError(
            f"client must be a SandboxClient (from tensorlake_sandbox.sandbox_client(), or "
            f"LocalSandbox.client()), not {type(client).__name__}: it gives typed errors and "
            "finite timeouts, which safe stdin writes rely on"
        )
    if not isinstance(pid, int) or isinstance(pid, bool):
        raise TypeError(f"pid must be an int (the process's PID), not {type(pid).__name__}")
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool):
        raise TypeError(f"chunk_size must be an int number of bytes, not {type(chunk_size).__name__}")
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be a positive number of bytes, not {chunk_size}")


def request_timeout(timeout: object) -> httpx.Timeout | Unset:
    """The per-request ``timeout=`` for the generated functions: UNSET keeps the client's."""
    if timeout is None:
        return UNSET
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds or an httpx.Timeout, not {timeout!r}")
    return httpx.Timeout(timeout)


def check_progress(on_progress: object) -> None:
    if on_progress is not None and not callable(on_progress):
        raise TypeError(
            f"on_progress must be callable (it gets each request's byte count), not {on_progress!r}"
        )


class _Sending:
    """`Delivery.sending`'s context manager (a class: cheaper per request than a generator)."""

    __slots__ = ("_callback", "_token")

    def __init__(self, callback: Callable[[int], None]) -> None:
        self._callback = callback

    def __enter__(self) -> None:
        self._token = on_response.set(self._callback)

    def __exit__(self, *exc: object) -> None:
        on_response.reset(self._token)


class Delivery:
    """The state of one write call: bytes confirmed so far, and the current request size."""

    def __init__(
        self,
        pid: int,
        chunk_size: int,
        policy: RetryPolicy,
        on_progress: Callable[[int], object] | None = None,
    ):
        self.pid = pid
        self.limit = chunk_size
        self.policy = policy
        self.on_progress = on_progress
        self.delivered = 0
        self._in_flight = 0  # bytes of the request being sent, until the sandbox confirms them

    def sending(self, size: int) -> _Sending:
        """Around one request of ``size`` bytes: counted the moment its 204 arrives."""
        self._in_flight = size
        return _Sending(self._on_response)

    def _on_response(self, status: int) -> None:
        if status == 204 and self._in_flight:
            size, self._in_flight = self._in_flight, 0
            self.delivered += size
            if self.on_progress is not None:
                self.on_progress(size)

    def annotate(self, error: BaseException, size: int) -> None:
        """Give ``error`` this write's exact figures, as attributes and as a note."""
        error.bytes_delivered = self.delivered  # type: ignore[attr-defined]
        error.request_bytes = size  # type: ignore[attr-defined]
        if self._in_flight == 0:
            error.add_note(
                f"stdin of process {self.pid}: {self.delivered} bytes of this write were delivered "
                "(the last request too: the sandbox confirmed it before this error)"
            )
        elif isinstance(error, Exception):
            error.add_note(
                f"stdin of process {self.pid}: {self.delivered} bytes of this write were delivered "
                f"before the failing request of {size} bytes"
            )
        else:
            error.add_note(
                f"stdin of process {self.pid}: {self.delivered} bytes of this write were delivered; "
                f"a request of {size} bytes was in flight and may or may not have arrived"
            )

    def source_failed(self, error: BaseException) -> None:
        """Note on an error raised while reading the source (not on a cancellation)."""
        # take() waits only while everything read so far has been sent: nothing is in flight.
        if not isinstance(error, asyncio.CancelledError):
            error.add_note(
                f"stdin of process {self.pid}: stopped while reading the source; all "
                f"{self.delivered} bytes it gave before were delivered, and no request was in flight"
            )

    def pieces(self, chunk: bytes) -> Iterator[bytes]:
        """The chunk as requests no larger than ``limit`` (which may shrink on the way)."""
        pos = 0
        while pos < len(chunk):
            piece = chunk if pos == 0 and len(chunk) <= self.limit else chunk[pos : pos + self.limit]
            sent_before = self.delivered
            yield piece
            pos += self.delivered - sent_before

    def after_failure(self, error: BaseException, size: int, attempt: int) -> float | None:
        """What to do after request attempt ``attempt`` (from 1) of ``size`` bytes failed.

        Returns the delay before sending it again, or None to split it (``limit`` is now
        smaller); otherwise raises the error for the caller.
        """
        outcome = classify_failure(error)
        if outcome is None or self._in_flight == 0:
            # Not a request failure (KeyboardInterrupt, cancellation, a bug), or one after the
            # sandbox confirmed the request: propagate it, with the exact count.
            self.annotate(error, size)
            raise error
        if outcome is Outcome.NOT_SENT:
            if attempt < self.policy.attempts:
                return self.policy.delay(attempt)
            self.annotate(error, size)
            error.add_note(f"not sent: {attempt} attempts could not reach the sandbox")
            raise error
        if outcome is Outcome.TOO_LARGE and size > 1:
            self.limit = max(1, size // 2)
            return None
        if isinstance(error, SandboxError) and error.status_code is not None and error.status_code < 500:
            # Refused; a process that closed its stdin or exited mid-write may have read part of it.
            error.request_partly_written = error.status_code in (400, 404)
        if outcome is Outcome.UNKNOWN:
            status = error.status_code if isinstance(error, SandboxError) else None
            code = error.code if isinstance(error, SandboxError) else None
            what = f"HTTP {status}" if status is not None else f"{type(error).__name__}: {error}"
            unknown = DeliveryUnknownError(
                f"the {size} bytes of the last request may or may not have reached process "
                f"{self.pid}'s stdin ({what}); not resent, as that could duplicate them. "
                f"{self.delivered} bytes of this write were delivered before it",
                status_code=status,
                code=code,
            )
            unknown.bytes_delivered = self.delivered
            unknown.request_bytes = size
            raise unknown from error
        self.annotate(error, size)
        raise error


class CloseBudget:
    """One `close_stdin` call: its retries, all within the time the caller allowed.

    The budget is the largest finite part of ``timeout`` (else of the client's timeout).
    Only a close that certainly did not arrive is sent again: a second close after one
    that arrived would fail, so an uncertain one raises `DeliveryUnknownError`.
    """

    def __init__(self, client: SandboxClient, pid: int, timeout: TimeoutArg, policy: RetryPolicy):
        per_request = request_timeout(timeout)
        self.timeout = (
            per_request if isinstance(per_request, httpx.Timeout) else client.httpx_client_kwargs()["timeout"]
        )
        parts = [t for t in (self.timeout.as_dict().values() if self.timeout else ()) if t is not None]
        self.seconds: float | None = max(parts) if parts else None
        self.deadline = None if self.seconds is None else time.monotonic() + self.seconds
        self.pid = pid
        self.policy = policy

    def request_timeout(self) -> httpx.Timeout | Unset:
        """This attempt's timeout: no part longer than what is left of the budget."""
        if self.deadline is None or self.timeout is None:
            return UNSET
        left = max(0.001, self.deadline - time.monotonic())
        return httpx.Timeout(
            **{k: left if v is None else min(v, left) for k, v in self.timeout.as_dict().items()}
        )

    def after_failure(self, error: Exception, attempt: int) -> float:
        """The delay before the next attempt; otherwise raises."""
        outcome = classify_failure(error)
        if outcome is Outcome.UNKNOWN:
            raise DeliveryUnknownError(
                f"closing the stdin of process {self.pid} may or may not have arrived ({error}); "
                "not resent, as a second close fails once the first arrived",
                status_code=error.status_code if isinstance(error, SandboxError) else None,
            ) from error
        if outcome is not Outcome.NOT_SENT:
            raise error
        delay = self.policy.delay(attempt)
        if attempt >= self.policy.attempts:
            error.add_note(f"not sent: {attempt} attempts could not reach the sandbox")
            raise error
        if self.deadline is not None and time.monotonic() + delay >= self.deadline:
            error.add_note(f"not sent: gave up after {attempt} attempts, at the {self.seconds:g} s timeout")
            raise error
        return delay


class WriterBase:
    """What `StdinWriter` and `AsyncStdinWriter` share: arguments, counters, the open/closed state."""

    def __init__(
        self,
        client: SandboxClient,
        pid: int,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        timeout: TimeoutArg = None,
        retry: RetryPolicy | None = None,
    ):
        check_call(client, pid, chunk_size)
        request_timeout(timeout)
        self.client = client
        self.pid = pid
        self._chunk_size = chunk_size
        self._timeout = timeout
        self._retry = retry
        self.bytes_delivered = 0
        """Bytes written through this writer so far, confirmed by the sandbox."""
        self.closed = False
        self._uncertain = False

    def _count(self, size: int) -> None:
        # Called the moment the sandbox confirms a request: the count survives any interruption.
        self.bytes_delivered += size

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"stdin of process {self.pid} was closed by this writer")

    def _note_failure(self, error: BaseException) -> None:
        # Unknown state: an ambiguous request, or one interrupted while in flight.
        self._uncertain = isinstance(error, DeliveryUnknownError) or not isinstance(error, Exception)

    def _leave_open(self, error: BaseException | None) -> bool:
        if error is not None and self._uncertain:
            error.add_note(
                f"stdin of process {self.pid} was left open: the last write's delivery is unknown "
                f"({self.bytes_delivered} bytes confirmed through this writer); resume, close it, "
                "or kill the process"
            )
            return True
        return False


# -- when a failed write may be sent again (the retry rule) ----------------------------------------
# When a failed stdin write may be sent again: one pure rule, and the backoff between attempts.
#
# A stdin write is not idempotent: the same bytes written twice reach the process twice.
# So a request is resent only when the server certainly did not receive it:
#
# * the connection failed before anything was sent: ``httpx.ConnectError``,
#   ``httpx.ConnectTimeout``, ``httpx.PoolTimeout``;
# * the sandbox proxy answered 503 with a ``code`` saying it did not forward the request:
#   ``SANDBOX_NOT_READY``, ``SANDBOX_UNREACHABLE``, ``AUTH_SERVICE_UNAVAILABLE``.
#
# Those are retried a bounded number of times with exponential backoff and full jitter
# (by default at most 6 attempts, waiting at most 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s in all).
#
# Everything else that fails once bytes may have left (a read or write timeout, a dropped
# connection, a response that breaks HTTP framing, 502, 504, any other 5xx, a 503 without
# one of those codes) is never resent: it raises `DeliveryUnknownError`. A 413 means
# nothing was written: the request is split. Any other 4xx means the sandbox refused the
# request and it is raised, never resent. A refusal does not always mean that nothing was
# written: a process that closes its stdin or exits while a request is being written gets
# part of it, then the sandbox answers 400 (or 404); such errors carry
# ``request_partly_written=True``.

# Codes the sandbox proxy sends with a 503 when it did not forward the request to the sandbox.
NOT_FORWARDED_CODES = frozenset({"SANDBOX_NOT_READY", "SANDBOX_UNREACHABLE", "AUTH_SERVICE_UNAVAILABLE"})


class Outcome(enum.Enum):
    """What a failed stdin write means for the bytes it carried."""

    NOT_SENT = "not_sent"
    """Certainly not received: safe to send again after a backoff."""
    TOO_LARGE = "too_large"
    """413: the body was refused whole and nothing was written; send it in smaller pieces."""
    REJECTED = "rejected"
    """A 4xx: the sandbox refused the request (part of it may have been written first, see
    ``SandboxError.request_partly_written``); resending will not help."""
    UNKNOWN = "unknown"
    """The bytes may or may not have reached the process: never resend them."""


def classify_failure(error: BaseException) -> Outcome | None:
    """What ``error``, raised by one stdin write request, says about its bytes.

    None when ``error`` is not a failure of the request at all (a programming error,
    ``KeyboardInterrupt``): the caller lets it propagate untouched.
    """
    if isinstance(error, httpx.TransportError):  # raw, as a caller may pass it: the one table says
        error = transport_error(error)
    if isinstance(error, (SandboxConnectionError, SandboxTimeoutError)):
        return Outcome.UNKNOWN if error.may_have_been_sent else Outcome.NOT_SENT
    if isinstance(error, SandboxError):
        status = error.status_code
        if status is None:
            return Outcome.UNKNOWN
        if status == 413:
            return Outcome.TOO_LARGE
        if status == 503 and error.code in NOT_FORWARDED_CODES:
            return Outcome.NOT_SENT
        if 400 <= status < 500:
            return Outcome.REJECTED
        return Outcome.UNKNOWN
    if isinstance(error, httpx.HTTPError):  # an answer that could not be decoded, say
        return Outcome.UNKNOWN
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how patiently, a request that certainly did not arrive is sent again.

    ``attempts`` counts the first try. Before attempt ``n`` (from 1) the writer waits a
    random time between 0 and ``min(max_delay, base_delay * 2 ** (n - 1))`` seconds.
    """

    attempts: int = 6
    base_delay: float = 0.1
    max_delay: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be at least 1, not {self.attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("RetryPolicy delays must not be negative")

    def delay(self, retry: int, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first retry)."""
        ceiling = min(self.max_delay, self.base_delay * (2 ** max(0, retry - 1)))
        return (rng or random).uniform(0, ceiling)


DEFAULT_RETRY = RetryPolicy()
