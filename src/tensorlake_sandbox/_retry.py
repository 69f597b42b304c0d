"""When a failed stdin write may be sent again: one pure rule, and the backoff between attempts.

A stdin write is not idempotent: the same bytes written twice reach the process twice.
So a request is resent only when the server certainly did not receive it:

* the connection failed before anything was sent: ``httpx.ConnectError``,
  ``httpx.ConnectTimeout``, ``httpx.PoolTimeout``;
* the sandbox proxy answered 503 with a ``code`` saying it did not forward the request:
  ``SANDBOX_NOT_READY``, ``SANDBOX_UNREACHABLE``, ``AUTH_SERVICE_UNAVAILABLE``.

Those are retried a bounded number of times with exponential backoff and full jitter
(by default at most 6 attempts, waiting at most 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s in all).

Everything else that fails once bytes may have left (a read or write timeout, a dropped
connection, a response that breaks HTTP framing, 502, 504, any other 5xx, a 503 without
one of those codes) is never resent: it raises `DeliveryUnknownError`. A 413 means
nothing was written: the request is split. Any other 4xx means the sandbox refused the
request and it is raised, never resent. A refusal does not always mean that nothing was
written: a process that closes its stdin or exits while a request is being written gets
part of it, then the sandbox answers 400 (or 404); such errors carry
``request_partly_written=True``.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass

import httpx

from ._errors import SandboxConnectionError, SandboxError, SandboxTimeoutError

__all__ = ["NOT_FORWARDED_CODES", "Outcome", "RetryPolicy", "classify_failure"]

# Codes the sandbox proxy sends with a 503 when it did not forward the request to the sandbox.
NOT_FORWARDED_CODES = frozenset({"SANDBOX_NOT_READY", "SANDBOX_UNREACHABLE", "AUTH_SERVICE_UNAVAILABLE"})

# Failures raised before a single byte of the request was sent.
_NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


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
    if isinstance(error, _NOT_SENT_ERRORS):
        return Outcome.NOT_SENT
    if isinstance(error, httpx.HTTPError):
        # ReadTimeout, WriteTimeout, ReadError, WriteError, RemoteProtocolError, ...
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
