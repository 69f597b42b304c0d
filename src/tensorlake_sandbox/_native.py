"""The fast path for small requests: pyreqwest (Rust: reqwest on hyper) under a SandboxClient.

Profiled per 16-byte stdin write (issue 12), most of the client's CPU was httpx's own layers
(the client's send machinery, httpcore, h11), far more than the request itself. A small
request that a `SandboxClient` would send plainly therefore skips them: `_http` builds the
same request, this module sends it through one pyreqwest client per httpx client, and `_http`
turns the answer back into an `httpx.Response` that goes through the same error mapping.
BENCHMARKS.md has the figures (sections 1, 5 and 7).

What stays exactly as on httpx:

* the bytes: method, URL, the client's headers and the request's, the key, the body (less
  ``Accept-Encoding``, so that no answer comes compressed); no proxy, no redirects, no
  cookies (`_http` takes this path only when the client has none of those to apply);
* the timeouts: connect, read and pool as set; as pyreqwest has no write timeout, a request
  also ends after the sum of the four (never a hang);
* no request is ever sent twice: reqwest resends a request whose connection closed before
  the answer (even after the whole body went out), but only when it can replay the body.
  The body is therefore handed over as a one-shot stream (`_OneShot`), which reqwest
  cannot replay;
* what a failure says about the bytes: pyreqwest's error classes do not tell it (a
  connection closed after the body is a ``ConnectError`` there), but the one-shot body
  does: if reqwest never took it, the bytes were not sent, and the failure is an httpx
  ``ConnectError`` / ``ConnectTimeout`` / ``PoolTimeout``; once taken, the request may have
  arrived (``ReadTimeout``, ``WriteTimeout``, ``ReadError``, ``WriteError`` or
  ``RemoteProtocolError``). Only requests with a body take this path (a bodiless POST
  could act on its head alone), and a request pyreqwest refuses to build goes through
  httpx instead, which says what is wrong with it;
* Ctrl-C: pyreqwest's blocking call cannot be interrupted, so the main thread hands it to
  a helper thread and waits on a lock, which a signal interrupts. The abandoned request
  finishes or times out on its own; its answer is dropped, as an interrupted httpx
  request's would be. That helper and pyreqwest's threads block process signals, so that
  the kernel hands Ctrl-C to the main thread rather than to one of them.

After a fork, a process whose parent had started pyreqwest's runtime sends everything
through httpx (the runtime's threads do not survive a fork).
"""

from __future__ import annotations

import _thread
import contextlib
import importlib.util
import operator
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import httpx

# pyreqwest is imported when the first fast-path request is made: it costs about 12 MiB of
# memory, which a client that only streams large writes never needs.
_IMPORTED = importlib.util.find_spec("pyreqwest") is not None

__all__ = ["BODY_METHODS", "SMALL_BODY", "AsyncNative", "NotSendable", "SyncNative", "available"]

# A request body up to this size takes the fast path (larger ones stream through httpx, which
# bounds memory and has a write timeout).
SMALL_BODY = 64 * 1024

# The methods that take the fast path, always with a body of at least one byte.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

Headers = Sequence[tuple[str, str]]
Answer = tuple[int, list[tuple[str, str]], bytes]

_started = False  # pyreqwest's runtime has been used in this process
_disabled = False  # set in a child forked after that: the runtime's threads are gone


def _after_fork_in_child() -> None:
    global _disabled, _main_worker, _async_runtime_started
    if _started:
        _disabled = True
    _main_worker = None
    _async_runtime_started = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# Process-wide signals that Python handles in the main thread. The kernel hands such a signal
# to any thread that does not block it: had a pyreqwest or helper thread taken a Ctrl-C, the
# main thread would have gone on waiting for the request. Every thread started here, and
# pyreqwest's own, blocks them.
_PROCESS_SIGNALS = {
    getattr(signal, name)
    for name in (
        "SIGINT",
        "SIGTERM",
        "SIGHUP",
        "SIGQUIT",
        "SIGUSR1",
        "SIGUSR2",
        "SIGALRM",
        "SIGCHLD",
        "SIGWINCH",
    )
    if hasattr(signal, name)
}


@contextlib.contextmanager
def _signals_blocked() -> Iterator[None]:
    """Threads started in this block inherit a mask that leaves those signals to the others."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _PROCESS_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


_async_runtime_started = False


def available() -> bool:
    """Whether the fast path can be used in this process."""
    return _IMPORTED and not _disabled


class NotSendable(Exception):
    """pyreqwest refused to build the request (nothing was sent): send it through httpx."""


def _configure(builder: Any, timeout: httpx.Timeout) -> Any:
    global _started
    _started = True
    builder = (
        builder.no_proxy()
        .follow_redirects(False)
        .http1_only()
        .gzip(False)
        .brotli(False)
        .zstd(False)
        .deflate(False)
        .max_connections(100)  # as httpx's pool
        .pool_idle_timeout(timedelta(seconds=5))  # as httpx's keep-alive expiry
    )
    if timeout.connect is not None:
        builder = builder.connect_timeout(timedelta(seconds=timeout.connect))
    if timeout.read is not None:
        builder = builder.read_timeout(timedelta(seconds=timeout.read))
    if timeout.pool is not None:
        builder = builder.pool_timeout(timedelta(seconds=timeout.pool))
    phases = (timeout.connect, timeout.write, timeout.read, timeout.pool)
    if all(p is not None for p in phases):
        builder = builder.timeout(timedelta(seconds=sum(p for p in phases if p is not None)))
    return builder


def _reason(exc: Exception) -> str:
    """pyreqwest's message and its root cause, on one line ("connection error: Connection
    refused (os error 111)"), not the repr of its list of causes that ``str(exc)`` gives."""
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    details = getattr(exc, "details", None)
    causes = details.get("causes") if isinstance(details, dict) else None
    root = causes[-1].get("message") if causes and isinstance(causes[-1], dict) else None
    return f"{message}: {root}" if isinstance(root, str) and root and root != message else str(message)


def httpx_error(exc: Exception, request: httpx.Request, body_taken: bool) -> httpx.TransportError:
    """The httpx exception for a pyreqwest failure, by whether reqwest took the body."""
    from pyreqwest.exceptions import (
        PoolTimeoutError,
        ReadError,
        RequestTimeoutError,
        WriteError,
        WriteTimeoutError,
    )

    message = _reason(exc)
    timed_out = isinstance(exc, RequestTimeoutError)
    if not body_taken:  # nothing of the body left: not delivered, safe to send again
        if isinstance(exc, PoolTimeoutError):
            return httpx.PoolTimeout(message, request=request)
        if timed_out:
            return httpx.ConnectTimeout(message, request=request)
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, WriteTimeoutError):
        return httpx.WriteTimeout(message, request=request)
    if timed_out:
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, WriteError):
        return httpx.WriteError(message, request=request)
    if isinstance(exc, ReadError):
        return httpx.ReadError(message, request=request)
    return httpx.RemoteProtocolError(message, request=request)


class _OneShot:
    """A body reqwest can take once and never replay; it tells whether it was taken.

    A tuple iterator: reqwest pulls from it without running Python code, and its length
    hint drops to 0 once the body was taken.
    """

    __slots__ = ("_items", "body")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self._items = iter((body,))

    @property
    def taken(self) -> bool:
        return operator.length_hint(self._items) == 0


T = TypeVar("T")


class _Worker:
    """The thread that makes the main thread's blocking pyreqwest calls, so that Ctrl-C can
    interrupt the wait (a lock acquire) instead of waiting for the request to end."""

    def __init__(self) -> None:
        self._go = _thread.allocate_lock()
        self._go.acquire()
        self._done = _thread.allocate_lock()
        self._done.acquire()
        self._job: Callable[[], Any] | None = None
        self._result: tuple[Any, BaseException | None] = (None, None)
        self.busy = False
        self._abandoned = False
        with _signals_blocked():  # the thread keeps the mask, and so do pyreqwest's it starts
            threading.Thread(target=self._run, name="tensorlake-sandbox-native", daemon=True).start()

    def _run(self) -> None:
        while True:
            self._go.acquire()
            job = self._job
            if job is None or self._abandoned:
                return
            try:
                self._result = (job(), None)
            except BaseException as exc:  # handed to the caller
                self._result = (None, exc)
            self._job = None
            if self._abandoned:
                return
            self._done.release()

    def call(self, job: Callable[[], T]) -> T:
        self.busy = True
        self._job = job
        self._go.release()
        try:
            # In slices: a signal the kernel gave another thread (any thread that does not
            # block it may get it) is only run by the main thread once it is back in Python.
            while not self._done.acquire(timeout=_SLICE):
                pass
        except BaseException:
            # Interrupted (Ctrl-C, or an exception from another signal handler): the request
            # goes on in this thread, which ends with it; its answer is dropped.
            self._abandoned = True
            raise
        self.busy = False
        result, error = self._result
        self._result = (None, None)
        if error is not None:
            raise error
        return result  # type: ignore[no-any-return]


# How long the main thread waits for the helper before looking at pending signals again.
_SLICE = 0.05

_main_worker: _Worker | None = None
_MAIN_THREAD = threading.main_thread().ident


def _blocking(job: Callable[[], T]) -> T:
    """Run a blocking pyreqwest call so that Ctrl-C interrupts it in the main thread."""
    global _main_worker
    if _thread.get_ident() != _MAIN_THREAD:
        return job()  # signals reach only the main thread
    worker = _main_worker
    if worker is None or worker._abandoned:
        worker = _main_worker = _Worker()
    elif worker.busy:
        return job()  # a signal handler's own request, while the main thread waits
    return worker.call(job)


def _prepare(client: Any, method: str, url: str, headers: Headers, shot: _OneShot) -> Any:
    """The built pyreqwest request: ``Content-Length`` given, so the one-shot body is not chunked.

    A URL or header that pyreqwest refuses (it raises ``ValueError`` for a header, and
    ``BuilderError``) makes it `NotSendable`: httpx then sends the request, or says what is
    wrong with it, as it would without the fast path.
    """
    from pyreqwest.exceptions import BuilderError

    try:
        return (
            client.request(method, url)
            .headers([*headers, ("content-length", str(len(shot.body)))])
            .body_stream(shot._items)
            .build()
        )
    except (BuilderError, ValueError) as exc:
        raise NotSendable(str(exc)) from exc


class SyncNative:
    """One pyreqwest client for one sync httpx client (same timeouts)."""

    def __init__(self, timeout: httpx.Timeout) -> None:
        from pyreqwest.client import SyncClientBuilder
        from pyreqwest.exceptions import PyreqwestError

        with _signals_blocked():  # pyreqwest starts its runtime thread here
            self._client = _configure(SyncClientBuilder(), timeout).build()
        self._error = PyreqwestError

    def send(
        self, method: str, url: str, headers: Headers, body: bytes, request: Callable[[], httpx.Request]
    ) -> Answer:
        shot = _OneShot(body)
        prepared = _prepare(self._client, method, url, headers, shot)

        def job() -> Answer:
            response = prepared.send()
            return response.status, response.headers.items(), bytes(response.bytes())

        try:
            return _blocking(job)
        except self._error as exc:
            raise httpx_error(exc, request(), shot.taken) from exc

    def close(self) -> None:
        self._client.close()


class AsyncNative:
    """One pyreqwest client for one async httpx client (same timeouts, same event loop)."""

    def __init__(self, timeout: httpx.Timeout) -> None:
        from pyreqwest.client import ClientBuilder
        from pyreqwest.exceptions import PyreqwestError

        with _signals_blocked():
            self._client = _configure(ClientBuilder(), timeout).build()
        self._error = PyreqwestError

    async def send(
        self, method: str, url: str, headers: Headers, body: bytes, request: Callable[[], httpx.Request]
    ) -> Answer:
        shot = _OneShot(body)
        prepared = _prepare(self._client, method, url, headers, shot)
        global _async_runtime_started
        if _async_runtime_started:
            sending = prepared.send()
        else:
            with _signals_blocked():  # pyreqwest starts its async runtime's thread here
                sending = prepared.send()
            _async_runtime_started = True
        try:
            response = await sending
            return response.status, response.headers.items(), bytes(await response.bytes())
        except self._error as exc:
            raise httpx_error(exc, request(), shot.taken) from exc

    async def aclose(self) -> None:
        await self._client.close()
