"""The few places where the sync and async halves really differ (after httpcore's backends).

`_async/` is written once against these names; `scripts/unasync.py`'s naming convention
(``AsyncX`` -> ``X``, ``ax`` -> ``x``) gives the generated sync half the other one of each
pair. Each pair does the same job:

- a worker runs one function in the background (a task / a daemon thread) and keeps its
  error for the caller; a thread cannot be cancelled, so the sync ``cancel`` and ``settle``
  leave it to end with its stream;
- an event waited for with a timeout;
- ``shielded``: a call that a cancellation must not interrupt (async: `asyncio.shield`);
- ``cleanup``: the same, for a kill on the way out of a failure, whose own error is dropped on
  the async side (the original error matters more) and raised on the sync side (as before);
- ``Lock``: a lock (`asyncio.Lock` / `threading.Lock`);
- ``deliver``: a terminal's ``on_output`` callback called (async: its awaitable awaited);
- ``receive_frame``: a websocket's next binary frame, `TimeoutError` when none came in time;
- ``read_file``: one read of a request body's file (async: in a worker thread unless it is a
  `io.BytesIO`, so that the event loop is never blocked);
- ``WebSocket``: the httpx-ws session class (sync: one that can close while its queue is full).

Deadlines are `time.monotonic` values on both sides (the event loop's clock by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import io
import queue
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
from httpx_ws import AsyncWebSocketSession, WebSocketSession

__all__ = [
    "AsyncEvent",
    "AsyncLock",
    "AsyncWebSocket",
    "AsyncWorker",
    "Event",
    "Lock",
    "WebSocket",
    "Worker",
    "acleanup",
    "adeliver",
    "aread_file",
    "areceive_frame",
    "ashielded",
    "cleanup",
    "deadline_after",
    "deliver",
    "read_file",
    "receive_frame",
    "remaining",
    "shielded",
]


def deadline_after(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


# -- async ---------------------------------------------------------------------------------------


class AsyncWorker:
    """Runs one coroutine function in a task and keeps its exception for the caller."""

    def __init__(self, target: Callable[[], Awaitable[None]], name: str):
        self._task: asyncio.Future[None] = asyncio.ensure_future(target())

    @property
    def error(self) -> BaseException | None:
        task = self._task
        return task.exception() if task.done() and not task.cancelled() else None

    def is_current(self) -> bool:
        """Whether the caller is this worker."""
        return asyncio.current_task() is self._task

    async def join_until(self, deadline: float | None) -> bool:
        """True once it has finished; False when ``deadline`` came first."""
        await asyncio.wait([self._task], timeout=remaining(deadline))
        return self._task.done()

    async def settle(self, grace: float) -> None:
        """Give it ``grace`` seconds to end, then cancel it; either way, wait for its end."""
        _, pending = await asyncio.wait([self._task], timeout=grace)
        for task in pending:
            task.cancel()
        with contextlib.suppress(BaseException):
            await self._task

    async def cancel(self) -> None:
        self._task.cancel()
        # Waited for, so that its connections are closed before the client is.
        await asyncio.gather(self._task, return_exceptions=True)


class AsyncEvent:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)


AsyncLock = asyncio.Lock
AsyncWebSocket = AsyncWebSocketSession


async def adeliver(callback: Callable[[bytes], Any], chunk: bytes) -> None:
    result = callback(chunk)
    if inspect.isawaitable(result):
        await result


async def aread_file(f: Any, n: int) -> bytes:
    data: bytes = await anyio.to_thread.run_sync(f.read, n) if not isinstance(f, io.BytesIO) else f.read(n)
    return data


async def areceive_frame(ws: AsyncWebSocketSession, timeout: float | None) -> bytes:
    return await ws.receive_bytes(timeout)


async def ashielded(fn: Callable[[], Awaitable[None]]) -> None:
    await asyncio.shield(fn())


async def acleanup(fn: Callable[[], Awaitable[None]]) -> None:
    with contextlib.suppress(Exception):
        await asyncio.shield(fn())


# -- sync ----------------------------------------------------------------------------------------


class Worker(threading.Thread):
    """Runs one function in a daemon thread (started at once) and keeps its exception for the caller."""

    def __init__(self, target: Callable[[], None], name: str):
        super().__init__(name=name, daemon=True)
        self._fn = target
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:
            self.error = exc

    def join_until(self, deadline: float | None) -> bool:
        """True once it has finished; False when ``deadline`` came first."""
        self.join(remaining(deadline))
        return not self.is_alive()

    def is_current(self) -> bool:
        """Whether the caller is this worker."""
        return threading.current_thread() is self

    def settle(self, grace: float) -> None:
        """Nothing to do: a thread cannot be cancelled; it ends with its stream."""

    def cancel(self) -> None:
        """Nothing to do: a thread cannot be cancelled; it ends with its stream."""


class Event:
    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> None:
        self._event.wait(timeout)


def shielded(fn: Callable[[], None]) -> None:
    fn()


def cleanup(fn: Callable[[], None]) -> None:
    fn()


Lock = threading.Lock


def deliver(callback: Callable[[bytes], Any], chunk: bytes) -> None:
    callback(chunk)


def read_file(f: Any, n: int) -> bytes:
    data: bytes = f.read(n)
    return data


def receive_frame(ws: WebSocketSession, timeout: float | None) -> bytes:
    try:
        return ws.receive_bytes(timeout)
    except queue.Empty:  # httpx-ws's sync session says "nothing in time" with its queue's error
        raise TimeoutError(f"no frame within {timeout} s") from None


class WebSocket(WebSocketSession):
    """httpx-ws's sync session, closable while its queue of unread frames is full.

    Its receiving thread blocks putting into the bounded queue when nobody reads, and the
    stock ``__exit__`` joins that thread: it would wait forever. Here the stock ``__exit__``
    runs in a thread of its own while this one takes frames off the queue through the public
    ``receive``, which lets the receiver end; only public httpx-ws API is used.
    """

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        closer = threading.Thread(target=super().__exit__, args=(exc_type, exc, tb), name="ws-close")
        closer.start()
        while closer.is_alive():
            with contextlib.suppress(Exception):
                self.receive(timeout=0.05)  # a frame dropped (the terminal is closing), or a close
        closer.join()
