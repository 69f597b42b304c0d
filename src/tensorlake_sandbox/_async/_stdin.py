"""Streaming writes to a process's stdin that never lose or duplicate a byte.

`write_stdin` sends any source (bytes, str, a binary file or pipe, an iterable, and on the
async path an async iterable) in order, one request at a time, each at most ``chunk_size``
bytes, through the generated ``sandbox_process_stdin`` function. Memory stays bounded by
the chunk size whatever the input size; small pieces are coalesced while a request is in
flight, and whatever is available is sent at once, so an interactive producer is never
held back. ``close=True`` (or `aclose_stdin`) then delivers EOF; `AsyncStdinWriter` is a context
manager around both.

Retries (the rule lives in `_delivery.classify_failure`): a request is sent again, at most
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

Written once, async, in ``_async/_stdin.py`` (`awrite_stdin`, `aclose_stdin`, `astdin_writer`);
``_sync/_stdin.py`` is generated from it by ``scripts/unasync.py`` (``make generate``), and
``make check`` fails when it is out of date. Edit only the async file.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from types import TracebackType
from typing import Self

from tensorlake_api_client.api.sandbox_processes import sandbox_process_close_stdin, sandbox_process_stdin
from tensorlake_api_client.types import File

from .._client import SandboxClient
from .._delivery import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_RETRY,
    CloseBudget,
    Delivery,
    RetryPolicy,
    TimeoutArg,
    WriterBase,
    check_call,
    check_progress,
    request_timeout,
)
from .._sources import AsyncSource, aopen_source

__all__ = ["AsyncStdinWriter", "aclose_stdin", "astdin_writer", "awrite_stdin"]


async def _asend(client: SandboxClient, piece: bytes, state: Delivery, timeout: TimeoutArg) -> None:
    attempt = 0
    while True:
        attempt += 1
        payload = io.BytesIO(piece)
        try:
            with state.sending(len(piece)):  # counted the moment the sandbox confirms it
                await sandbox_process_stdin.asyncio(
                    state.pid, client=client, body=File(payload=payload), timeout=request_timeout(timeout)
                )
        except BaseException as error:
            delay = state.after_failure(error, len(piece), attempt)
        else:
            return
        finally:
            # httpx keeps each request in reference cycles until the collector runs; free the
            # body now so that memory stays bounded by the chunk size.
            payload.close()
        if delay is None:
            return  # split: the caller sends it again in smaller pieces
        await asyncio.sleep(delay)


async def _apump(client: SandboxClient, source: AsyncSource, state: Delivery, timeout: TimeoutArg) -> int:
    while True:
        try:
            chunk = await source.atake(state.limit)
        except BaseException as error:
            state.source_failed(error)
            raise
        if not chunk:
            return state.delivered
        for piece in state.pieces(chunk):
            await _asend(client, piece, state, timeout)


async def awrite_stdin(
    client: SandboxClient,
    pid: int,
    data: object,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    timeout: TimeoutArg = None,
    retry: RetryPolicy | None = None,
    on_progress: Callable[[int], object] | None = None,
    close: bool = False,
) -> int:
    """Write ``data`` to the stdin of process ``pid``; return the number of bytes delivered.

    ``data``: bytes, bytearray, memoryview (or another bytes-like object), str (sent as
    UTF-8), a binary file object (``open(path, 'rb')``, a pipe, ``sys.stdin.buffer``: read
    from its current position until EOF), an iterable of bytes-like pieces, or (async
    calls only) an async iterable of them. Anything else is a `TypeError`, raised before
    any request is sent where it can be (a piece of the wrong type is found only when the
    iterable yields it; the pieces before it are delivered first).

    Bytes go in order, in requests of at most ``chunk_size`` bytes, one at a time; pieces
    are coalesced while a request is in flight, and what is available is sent at once (an
    interactive producer is never held back). Memory stays bounded by about three times
    ``chunk_size`` whatever the input size. Empty input sends nothing and returns 0.

    A file or iterable is read by a helper thread (so an iterable must tolerate being
    consumed from another thread, and an event loop is never blocked), up to
    ``2 * chunk_size`` bytes ahead. After an error, a seekable file is left positioned
    just after the delivered bytes, so passing it again resumes exactly; a pipe or an
    iterable may have been read further than ``bytes_delivered``. An interrupted call
    (KeyboardInterrupt, cancellation) stops its reader; the request in flight, if any,
    may or may not have arrived.

    ``timeout`` overrides the client's timeout for each request of this call (seconds or
    `httpx.Timeout`): a process that stops reading makes the write fail with
    `DeliveryUnknownError` once it expires, instead of hanging. ``retry`` sets the retry
    policy (only requests the sandbox certainly did not receive are sent again).
    ``on_progress(n)`` is called after each request the sandbox confirmed, with its size
    in bytes (e.g. a progress bar's ``update``). With ``close=True``, EOF is sent once the
    data was delivered (the process reads end of input; ``b""`` with ``close=True`` only
    closes); the close retries, within ``timeout``, only what certainly did not arrive.

    Raises `DeliveryUnknownError`, `StdinNotWritableError`, `ProcessNotFoundError`,
    `PayloadTooLargeError` (a 1-byte request refused), `SandboxUnavailableError` (retries
    exhausted), each with ``bytes_delivered`` and ``request_bytes``; an exception raised
    by the source propagates unchanged once the bytes read before it were delivered.
    """
    if not isinstance(close, bool):
        raise TypeError(f"close must be True or False, not {type(close).__name__}")
    delivered = await _awrite(client, pid, data, chunk_size, timeout, retry, on_progress)
    if close:
        await aclose_stdin(client, pid, timeout=timeout, retry=retry)
    return delivered


async def _awrite(
    client: SandboxClient,
    pid: int,
    data: object,
    chunk_size: int,
    timeout: TimeoutArg,
    retry: RetryPolicy | None,
    on_progress: Callable[[int], object] | None,
) -> int:
    check_call(client, pid, chunk_size)
    request_timeout(timeout)
    check_progress(on_progress)
    state = Delivery(pid, chunk_size, retry or DEFAULT_RETRY, on_progress)
    if type(data) is bytes and len(data) <= chunk_size:
        # The common small write: one chunk, already in memory (nothing to read, rewind or
        # close), so no source; a 413 still splits it (`Delivery.pieces`).
        for piece in state.pieces(data):
            await _asend(client, piece, state, timeout)
        return state.delivered
    source = aopen_source(data, 2 * chunk_size)
    try:
        return await _apump(client, source, state, timeout)
    except BaseException:
        await source.arewind(state.delivered)
        raise
    finally:
        await source.aclose()


async def aclose_stdin(
    client: SandboxClient, pid: int, *, timeout: TimeoutArg = None, retry: RetryPolicy | None = None
) -> None:
    """Close the stdin of process ``pid``: the process reads EOF.

    The whole call, retries included, ends within ``timeout`` (else the client's timeout).
    A close that certainly did not arrive (the connection failed, or the proxy did not
    forward it) is sent again; one that may have arrived raises `DeliveryUnknownError`.
    """
    check_call(client, pid)
    budget = CloseBudget(client, pid, timeout, retry or DEFAULT_RETRY)
    attempt = 0
    while True:
        attempt += 1
        try:
            await sandbox_process_close_stdin.asyncio(pid, client=client, timeout=budget.request_timeout())
            return
        except Exception as error:
            delay = budget.after_failure(error, attempt)
        await asyncio.sleep(delay)


class AsyncStdinWriter(WriterBase):
    """Writes to one process's stdin: ``AsyncStdinWriter(client, pid)``. Each `write` is sent at once.

    ``async with AsyncStdinWriter(client, pid) as w: await w.write(b"...")``; the block sends
    EOF when it ends. ``w.bytes_delivered`` counts the bytes confirmed so far. The arguments
    are `awrite_stdin`'s (``chunk_size``, ``timeout``, ``retry``).

    On leaving the ``with`` block normally, EOF is sent (the process's stdin is closed).
    On leaving it with an exception, EOF is still sent so that the process does not wait
    for input forever, except when the stream's state is unknown: the last write raised
    `DeliveryUnknownError` or was interrupted (KeyboardInterrupt, cancellation) before it
    finished. Then stdin is left open so the caller can decide (resume, close, or kill the
    process); a note on the exception says so. A failure to close while an exception is
    propagating is added to that exception as a note instead of replacing it.
    """

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
                on_progress=self._count,
            )
        except BaseException as error:
            self._note_failure(error)
            raise
        self._uncertain = False
        return n

    async def aclose(self) -> None:
        """Send EOF (idempotent)."""
        if not self.closed:
            await aclose_stdin(self.client, self.pid, timeout=self._timeout, retry=self._retry)
            self.closed = True

    close = aclose  # the async name of earlier versions (README, "Renames"); the same on the sync side

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.closed or self._leave_open(exc):
            return
        if exc is None:
            await self.aclose()
            return
        try:
            await self.aclose()
        except Exception as close_error:
            exc.add_note(f"closing stdin of process {self.pid} also failed: {close_error}")


def astdin_writer(
    client: SandboxClient,
    pid: int,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    timeout: TimeoutArg = None,
    retry: RetryPolicy | None = None,
) -> AsyncStdinWriter:
    """A writer for process ``pid``'s stdin.

    ``async with astdin_writer(client, pid) as w: await w.write(b"...")``.
    The ``with`` block sends EOF when it ends; see `AsyncStdinWriter` for what happens
    when it ends with an exception. ``w.bytes_delivered`` counts the bytes confirmed so far.
    """
    return AsyncStdinWriter(client, pid, chunk_size=chunk_size, timeout=timeout, retry=retry)
