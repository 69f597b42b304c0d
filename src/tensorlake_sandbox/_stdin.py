"""Streaming writes to a process's stdin that never lose or duplicate a byte.

`write_stdin` sends any source (bytes, str, a binary file or pipe, an iterable, and on the
async path an async iterable) in order, one request at a time, each at most ``chunk_size``
bytes, through the generated ``sandbox_process_stdin`` function. Memory stays bounded by
the chunk size whatever the input size; small pieces are coalesced while a request is in
flight, and whatever is available is sent at once, so an interactive producer is never
held back. `close_stdin` delivers EOF; `stdin_writer` is a context manager around both.

Retries (the rule lives in `classify_failure`): a request is sent again, at most
``RetryPolicy.attempts`` times in all with exponential backoff and jitter (about 3 s in
total by default), only when the sandbox certainly did not receive it: the connection
failed before anything was sent (``httpx.ConnectError``, ``ConnectTimeout``,
``PoolTimeout``), or the proxy answered 503 with a ``code`` saying it did not forward the
request (``SANDBOX_NOT_READY``, ``SANDBOX_UNREACHABLE``, ``AUTH_SERVICE_UNAVAILABLE``).
After a read or write timeout, a dropped connection once bytes may have left, a 502, a
504 or another 5xx, nothing is resent: `DeliveryUnknownError` is raised. A 413 means
nothing was written: the request is halved and the rest of the call keeps the smaller
size. Every error raised for a failed request carries ``bytes_delivered`` (bytes of this
call confirmed before the failing request) and ``request_bytes`` (the failing request's
size), so a caller can resume exactly.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self

import httpx

from tensorlake_api_client.api.sandbox_processes import sandbox_process_close_stdin, sandbox_process_stdin
from tensorlake_api_client.types import File, Response

from ._client import SandboxClient
from ._coalesce import AsyncSource, Source, aopen_source, open_source
from ._errors import DeliveryUnknownError, SandboxError, SandboxUnavailableError, raise_for_response
from ._retry import Outcome, RetryPolicy, classify_failure

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "AsyncStdinWriter",
    "StdinWriter",
    "aclose_stdin",
    "astdin_writer",
    "awrite_stdin",
    "close_stdin",
    "stdin_writer",
    "write_stdin",
]

# Bytes per request at most: well under the sandbox daemon's 2 MiB limit on one body.
DEFAULT_CHUNK_SIZE = 1 << 20

_DEFAULT_RETRY = RetryPolicy()

TimeoutArg = float | httpx.Timeout | None


# -- per-call timeout ----------------------------------------------------------------------

# The generated functions take no timeout; a request hook applies this call's override to
# each of its requests (a ContextVar: one per thread and per asyncio task).
_timeout_override: contextvars.ContextVar[dict[str, float | None] | None] = contextvars.ContextVar(
    "tensorlake_stdin_timeout", default=None
)


def _apply_timeout(request: httpx.Request) -> None:
    override = _timeout_override.get()
    if override is not None:
        request.extensions["timeout"] = override


async def _aapply_timeout(request: httpx.Request) -> None:
    _apply_timeout(request)


@contextmanager
def _timeout(client: SandboxClient, timeout: TimeoutArg, *, is_async: bool) -> Iterator[None]:
    if timeout is None:
        yield
        return
    http: httpx.Client | httpx.AsyncClient
    hook: Callable[[httpx.Request], Any]
    if is_async:
        http, hook = client.get_async_httpx_client(), _aapply_timeout
    else:
        http, hook = client.get_httpx_client(), _apply_timeout
    hooks = http.event_hooks["request"]
    if hook not in hooks:
        hooks.append(hook)
    t = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
    token = _timeout_override.set(t.as_dict())
    try:
        yield
    finally:
        _timeout_override.reset(token)


# -- checks --------------------------------------------------------------------------------


def _check_call(client: object, pid: object, chunk_size: object = DEFAULT_CHUNK_SIZE) -> None:
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


def _check_timeout(timeout: object) -> None:
    if timeout is None or isinstance(timeout, httpx.Timeout):
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds or an httpx.Timeout, not {timeout!r}")


def _check_progress(on_progress: object) -> None:
    if on_progress is not None and not callable(on_progress):
        raise TypeError(
            f"on_progress must be callable (it gets each request's byte count), not {on_progress!r}"
        )


def _check_response(response: Response[Any]) -> None:
    # A SandboxClient raises for non-2xx in its response hook; this is belt and braces.
    raise_for_response(response)


# -- what a failed request means -------------------------------------------------------------


class _Delivery:
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

    def confirmed(self, size: int) -> None:
        self.delivered += size
        if self.on_progress is not None:
            self.on_progress(size)

    def annotate(self, error: BaseException, size: int) -> None:
        if isinstance(error, SandboxError):
            error.bytes_delivered = self.delivered
            error.request_bytes = size
        error.add_note(
            f"stdin of process {self.pid}: {self.delivered} bytes of this write were delivered "
            f"before the failing request of {size} bytes"
        )

    def after_failure(self, error: BaseException, size: int, attempt: int) -> float | None:
        """What to do after request attempt ``attempt`` (from 1) of ``size`` bytes failed.

        Returns the delay before sending it again, or None to split it (``limit`` is now
        smaller); otherwise raises the error for the caller.
        """
        outcome = classify_failure(error)
        if outcome is None:
            # Not a request failure (KeyboardInterrupt, cancellation, a bug): propagate as is.
            error.add_note(
                f"stdin of process {self.pid}: {self.delivered} bytes were delivered; a request "
                f"of {size} bytes was in flight and may or may not have arrived"
            )
            raise error
        if outcome is Outcome.NOT_SENT:
            if attempt < self.policy.attempts:
                return self.policy.delay(attempt)
            if isinstance(error, SandboxError):
                self.annotate(error, size)
                raise error
            failure = SandboxUnavailableError(
                f"could not reach the sandbox after {attempt} attempts "
                f"({type(error).__name__}: {error}); nothing of this request was sent"
            )
            self.annotate(failure, size)
            raise failure from error
        if outcome is Outcome.TOO_LARGE and size > 1:
            self.limit = max(1, size // 2)
            return None
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


def _source_note(state: _Delivery) -> str:
    # take() waits only while everything read so far has been sent: nothing is in flight.
    return (
        f"stdin of process {state.pid}: stopped while reading the source; all {state.delivered} "
        "bytes it gave before were delivered, and no request was in flight"
    )


def _pieces(chunk: bytes, state: _Delivery) -> Iterator[bytes]:
    """The chunk as requests no larger than ``state.limit`` (which may shrink on the way)."""
    pos = 0
    while pos < len(chunk):
        piece = chunk if pos == 0 and len(chunk) <= state.limit else chunk[pos : pos + state.limit]
        sent_before = state.delivered
        yield piece
        pos += state.delivered - sent_before


# -- sync ------------------------------------------------------------------------------------


def _send(client: SandboxClient, piece: bytes, state: _Delivery) -> None:
    attempt = 0
    while True:
        attempt += 1
        payload = io.BytesIO(piece)
        try:
            _check_response(
                sandbox_process_stdin.sync_detailed(state.pid, client=client, body=File(payload=payload))
            )
        except BaseException as error:
            delay = state.after_failure(error, len(piece), attempt)
        else:
            state.confirmed(len(piece))
            return
        finally:
            # httpx keeps each request in reference cycles until the collector runs; free the
            # body now so that memory stays bounded by the chunk size.
            payload.close()
        if delay is None:
            return  # split: the caller sends it again in smaller pieces
        time.sleep(delay)


def _pump(client: SandboxClient, source: Source, state: _Delivery) -> int:
    while True:
        try:
            chunk = source.take(state.limit)
        except BaseException as error:
            error.add_note(_source_note(state))
            raise
        if not chunk:
            return state.delivered
        for piece in _pieces(chunk, state):
            _send(client, piece, state)


def write_stdin(
    client: SandboxClient,
    pid: int,
    data: object,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    timeout: TimeoutArg = None,
    retry: RetryPolicy | None = None,
    on_progress: Callable[[int], object] | None = None,
) -> int:
    """Write ``data`` to the stdin of process ``pid``; return the number of bytes delivered.

    ``data``: bytes, bytearray, memoryview (or another bytes-like object), str (sent as
    UTF-8), a binary file object (``open(path, 'rb')``, a pipe, ``sys.stdin.buffer``: read
    from its current position until EOF), or an iterable of bytes-like pieces. Anything
    else is a `TypeError`, raised before any request is sent where it can be (a piece of
    the wrong type is found only when the iterable yields it; the pieces before it are
    delivered first).

    Bytes go in order, in requests of at most ``chunk_size`` bytes, one at a time; pieces
    are coalesced while a request is in flight, and what is available is sent at once (an
    interactive producer is never held back). Memory stays bounded by about three times
    ``chunk_size`` whatever the input size. Empty input sends nothing and returns 0.

    A file or iterable is read by a helper thread (so an iterable must tolerate being
    consumed from another thread), up to ``2 * chunk_size`` bytes ahead. After an error, a
    seekable file is left positioned just after the delivered bytes, so passing it again
    resumes exactly; a pipe or an iterable may have been read further than
    ``bytes_delivered``.

    ``timeout`` overrides the client's timeout for this call (seconds or `httpx.Timeout`):
    a process that stops reading makes the write fail with `DeliveryUnknownError` once it
    expires, instead of hanging. ``retry`` sets the retry policy (see the module docs:
    only requests the sandbox certainly did not receive are sent again).
    ``on_progress(n)`` is called after each request the sandbox confirmed, with its size
    in bytes (e.g. a progress bar's ``update``).

    Raises `DeliveryUnknownError`, `StdinNotWritableError`, `ProcessNotFoundError`,
    `PayloadTooLargeError` (a 1-byte request refused), `SandboxUnavailableError` (retries
    exhausted), each with ``bytes_delivered`` and ``request_bytes``; an exception raised
    by the source propagates unchanged once the bytes read before it were delivered.
    """
    _check_call(client, pid, chunk_size)
    _check_timeout(timeout)
    _check_progress(on_progress)
    state = _Delivery(pid, chunk_size, retry or _DEFAULT_RETRY, on_progress)
    source = open_source(data, 2 * chunk_size)
    try:
        with _timeout(client, timeout, is_async=False):
            return _pump(client, source, state)
    except BaseException:
        source.rewind(state.delivered)
        raise
    finally:
        source.close()


def close_stdin(
    client: SandboxClient, pid: int, *, timeout: TimeoutArg = None, retry: RetryPolicy | None = None
) -> None:
    """Close the stdin of process ``pid``: the process reads EOF.

    Closing is idempotent on the sandbox, so unlike a write it is retried after any
    transient failure (a dropped connection, a timeout, 502/503/504).
    """
    _check_call(client, pid)
    _check_timeout(timeout)
    policy = retry or _DEFAULT_RETRY
    with _timeout(client, timeout, is_async=False):
        attempt = 0
        while True:
            attempt += 1
            try:
                _check_response(sandbox_process_close_stdin.sync_detailed(pid, client=client))
                return
            except Exception as error:
                delay = _close_retry_delay(error, attempt, policy)
            time.sleep(delay)


def _close_retry_delay(error: Exception, attempt: int, policy: RetryPolicy) -> float:
    outcome = classify_failure(error)
    if outcome in (Outcome.NOT_SENT, Outcome.UNKNOWN) and attempt < policy.attempts:
        return policy.delay(attempt)
    raise error


# -- async -----------------------------------------------------------------------------------


async def _asend(client: SandboxClient, piece: bytes, state: _Delivery) -> None:
    attempt = 0
    while True:
        attempt += 1
        payload = io.BytesIO(piece)
        try:
            _check_response(
                await sandbox_process_stdin.asyncio_detailed(
                    state.pid, client=client, body=File(payload=payload)
                )
            )
        except BaseException as error:
            delay = state.after_failure(error, len(piece), attempt)
        else:
            state.confirmed(len(piece))
            return
        finally:
            payload.close()
        if delay is None:
            return
        await asyncio.sleep(delay)


async def _apump(client: SandboxClient, source: AsyncSource, state: _Delivery) -> int:
    while True:
        try:
            chunk = await source.atake(state.limit)
        except BaseException as error:
            if not isinstance(error, asyncio.CancelledError):
                error.add_note(_source_note(state))
            raise
        if not chunk:
            return state.delivered
        for piece in _pieces(chunk, state):
            await _asend(client, piece, state)


async def awrite_stdin(
    client: SandboxClient,
    pid: int,
    data: object,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    timeout: TimeoutArg = None,
    retry: RetryPolicy | None = None,
    on_progress: Callable[[int], object] | None = None,
) -> int:
    """Async `write_stdin`: the same rules, and ``data`` may also be an async iterable.

    Blocking sources (files, pipes, sync iterables) are read in a helper thread, so the
    event loop is never blocked. Cancelling the call stops its reader; the request in
    flight, if any, may or may not have arrived.
    """
    _check_call(client, pid, chunk_size)
    _check_timeout(timeout)
    _check_progress(on_progress)
    state = _Delivery(pid, chunk_size, retry or _DEFAULT_RETRY, on_progress)
    source = aopen_source(data, 2 * chunk_size)
    try:
        with _timeout(client, timeout, is_async=True):
            return await _apump(client, source, state)
    except BaseException:
        await source.arewind(state.delivered)
        raise
    finally:
        await source.aclose()


async def aclose_stdin(
    client: SandboxClient, pid: int, *, timeout: TimeoutArg = None, retry: RetryPolicy | None = None
) -> None:
    """Async `close_stdin`."""
    _check_call(client, pid)
    _check_timeout(timeout)
    policy = retry or _DEFAULT_RETRY
    with _timeout(client, timeout, is_async=True):
        attempt = 0
        while True:
            attempt += 1
            try:
                _check_response(await sandbox_process_close_stdin.asyncio_detailed(pid, client=client))
                return
            except Exception as error:
                delay = _close_retry_delay(error, attempt, policy)
            await asyncio.sleep(delay)


# -- writers -----------------------------------------------------------------------------------


class _WriterBase:
    def __init__(
        self,
        client: SandboxClient,
        pid: int,
        *,
        chunk_size: int,
        timeout: TimeoutArg,
        retry: RetryPolicy | None,
    ):
        _check_call(client, pid, chunk_size)
        _check_timeout(timeout)
        self.client = client
        self.pid = pid
        self._chunk_size = chunk_size
        self._timeout = timeout
        self._retry = retry
        self.bytes_delivered = 0
        """Bytes written through this writer so far, confirmed by the sandbox."""
        self.closed = False
        self._uncertain = False

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError(f"stdin of process {self.pid} was closed by this writer")

    def _note_failure(self, error: BaseException) -> None:
        if isinstance(error, SandboxError) and error.bytes_delivered is not None:
            self.bytes_delivered += error.bytes_delivered
        # Unknown state: an ambiguous request, or one interrupted while in flight.
        self._uncertain = isinstance(error, DeliveryUnknownError) or not isinstance(error, Exception)

    def _leave_open(self, error: BaseException | None) -> bool:
        if error is not None and self._uncertain:
            error.add_note(
                f"stdin of process {self.pid} was left open: the last write's delivery is unknown "
                f"({self.bytes_delivered} bytes confirmed); resume, close it, or kill the process"
            )
            return True
        return False


class StdinWriter(_WriterBase):
    """Writes to one process's stdin; built by `stdin_writer`. Each `write` is sent at once.

    On leaving the ``with`` block normally, EOF is sent (the process's stdin is closed).
    On leaving it with an exception, EOF is still sent so that the process does not wait
    for input forever, except when the stream's state is unknown: the last write raised
    `DeliveryUnknownError` or was interrupted (KeyboardInterrupt, cancellation) before it
    finished. Then stdin is left open so the caller can decide (resume, close, or kill the
    process); a note on the exception says so. A failure to close while an exception is
    propagating is added to that exception as a note instead of replacing it.
    """

    def write(self, data: object) -> int:
        """Send ``data`` (anything `write_stdin` takes); return the bytes delivered by this call."""
        self._check_open()
        try:
            n = write_stdin(
                self.client,
                self.pid,
                data,
                chunk_size=self._chunk_size,
                timeout=self._timeout,
                retry=self._retry,
            )
        except BaseException as error:
            self._note_failure(error)
            raise
        self._uncertain = False
        self.bytes_delivered += n
        return n

    def close(self) -> None:
        """Send EOF (idempotent)."""
        if not self.closed:
            close_stdin(self.client, self.pid, timeout=self._timeout, retry=self._retry)
            self.closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.closed or self._leave_open(exc):
            return
        if exc is None:
            self.close()
            return
        try:
            self.close()
        except Exception as close_error:
            exc.add_note(f"closing stdin of process {self.pid} also failed: {close_error}")


class AsyncStdinWriter(_WriterBase):
    """Async twin of `StdinWriter` (same rules for EOF on exit); built by `astdin_writer`."""

    async def write(self, data: object) -> int:
        """Send ``data`` (anything `awrite_stdin` takes); return the bytes delivered by this call."""
        self._check_open()
        try:
            n = await awrite_stdin(
                self.client,
                self.pid,
                data,
                chunk_size=self._chunk_size,
                timeout=self._timeout,
                retry=self._retry,
            )
        except BaseException as error:
            self._note_failure(error)
            raise
        self._uncertain = False
        self.bytes_delivered += n
        return n

    async def close(self) -> None:
        """Send EOF (idempotent)."""
        if not self.closed:
            await aclose_stdin(self.client, self.pid, timeout=self._timeout, retry=self._retry)
            self.closed = True

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.closed or self._leave_open(exc):
            return
        if exc is None:
            await self.close()
            return
        try:
            await self.close()
        except Exception as close_error:
            exc.add_note(f"closing stdin of process {self.pid} also failed: {close_error}")


def stdin_writer(
    client: SandboxClient,
    pid: int,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    timeout: TimeoutArg = None,
    retry: RetryPolicy | None = None,
) -> StdinWriter:
    """A writer for process ``pid``'s stdin: ``with stdin_writer(client, pid) as w: w.write(b"...")``.

    The ``with`` block sends EOF when it ends; see `StdinWriter` for what happens when it
    ends with an exception. ``w.bytes_delivered`` counts the bytes confirmed so far.
    """
    return StdinWriter(client, pid, chunk_size=chunk_size, timeout=timeout, retry=retry)


def astdin_writer(
    client: SandboxClient,
    pid: int,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    timeout: TimeoutArg = None,
    retry: RetryPolicy | None = None,
) -> AsyncStdinWriter:
    """Async `stdin_writer`: ``async with astdin_writer(client, pid) as w: await w.write(b"...")``."""
    return AsyncStdinWriter(client, pid, chunk_size=chunk_size, timeout=timeout, retry=retry)
