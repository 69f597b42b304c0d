"""The few places where the sync and async process layers really differ (after httpcore's backends).

`_async/_process.py` is written once against these names; `scripts/unasync.py` renames
``AsyncWorker`` -> ``Worker``, ``AsyncEvent`` -> ``Event``, ``ashielded`` -> ``shielded``,
``acleanup`` -> ``cleanup`` for the generated sync half. Each pair does the same job:

- a worker runs one function in the background (a task / a daemon thread) and keeps its
  error for the caller; a thread cannot be cancelled, so the sync ``cancel`` and ``settle``
  leave it to end with its stream;
- an event waited for with a timeout;
- ``shielded``: a call that a cancellation must not interrupt (async: `asyncio.shield`);
- ``cleanup``: the same, for a kill on the way out of a failure, whose own error is dropped on
  the async side (the original error matters more) and raised on the sync side (as before).

Deadlines are `time.monotonic` values on both sides (the event loop's clock by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Awaitable, Callable

__all__ = [
    "AsyncEvent",
    "AsyncWorker",
    "Event",
    "Worker",
    "acleanup",
    "ashielded",
    "cleanup",
    "deadline_after",
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
