"""Managed processes: a supervisor per process started with a ``name``, ``restart`` or ``health_check``.

The shape follows Tensorlake's official SDK (0.5.163, ``ManagedProcessInfo``): each run of the
command is an ordinary process of the table (`ManagedProcess`, a new pid each time); the
supervisor starts the next run when one ends, per its restart policy:

- ``never``: no restart; ``on_failure`` (default): after a non-zero exit, a signal, or failed
  health checks; ``always``: after any end. ``max_restarts`` (null: no limit) caps them.
- The wait before a restart starts at ``initial_backoff_ms`` and doubles up to
  ``max_backoff_ms`` (status ``backing_off``, ``next_restart_at`` set meanwhile).
- A health check (``http``: GET ``path`` on ``127.0.0.1:port`` answering 2xx/3xx; ``tcp``: a
  connection) runs every ``interval_ms`` after ``initial_delay_ms``; ``failure_threshold``
  failures in a row make the run unhealthy: its tree is killed and the policy decides.
  Checks only ever go to loopback.
- Kill (DELETE) stops it for good: no restart; SIGTERM to its process group and its whole tree,
  SIGKILL after the stop grace (10 s, as the SDK documents ``stop_grace_ms``).
- Restart (POST .../restart) stops the current run the same way and starts a new one at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from typing import Any, Generic, Protocol, TypeVar

from ._validation import StartError, StartSpec

__all__ = ["STOP_GRACE", "Supervisor"]

STOP_GRACE = 10.0
# The shortest wait before a restart, whatever the policy asks: a command that exits at once with
# a zero backoff would otherwise be restarted in a tight loop.
MIN_BACKOFF_MS = 10


class _Run(Protocol):
    """What a supervisor needs of one run (`ManagedProcess`, _processes.py)."""

    @property
    def finished(self) -> bool: ...
    @property
    def exit_code(self) -> int | None: ...
    @property
    def signal(self) -> int | None: ...
    @property
    def ended_at(self) -> int | None: ...
    def kill(self) -> None: ...
    def terminate_tree(self) -> None: ...
    async def wait_finished(self) -> None: ...


# The type of a run: `ManagedProcess` (a type variable, so that this module imports nothing of
# _processes.py, which imports it).
RunT = TypeVar("RunT", bound=_Run)


class _Table(Protocol[RunT]):
    """What a supervisor needs of the table that starts its runs (`ProcessTable`, _processes.py)."""

    async def spawn(self, spec: StartSpec, supervisor: Supervisor[RunT]) -> RunT: ...
    def retire(self, proc: RunT) -> None: ...


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _probe(check: Any) -> bool:
    """One health check against 127.0.0.1 (never another address): True when healthy."""
    timeout = check.timeout_ms / 1000
    writer = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection("127.0.0.1", check.port)
            if check.type == "tcp":
                return True
            path = check.path or "/"
            writer.write(
                f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{check.port}\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            status_line = await reader.readline()
            parts = status_line.split()
            return len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1][:1] in (b"2", b"3")
    except (OSError, TimeoutError, ValueError):
        return False
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class Supervisor(Generic[RunT]):
    """One managed process: its runs, restart policy and health."""

    def __init__(self, table: _Table[RunT], spec: StartSpec, stop_grace: float) -> None:
        assert spec.restart is not None
        self.table = table
        self.spec = spec
        self.name = spec.name
        self.id = spec.name if spec.name is not None else "managed-" + secrets.token_hex(8)
        self.restart_config = spec.restart
        self.health_check = spec.health_check
        self.stop_grace = stop_grace
        self.status = "starting"
        self.restart_count = 0
        self.health_status = "disabled" if spec.health_check is None else "starting"
        self.consecutive_health_failures = 0
        self.last_exit: dict[str, Any] | None = None
        self.last_error: str | None = None
        self.next_restart_at: int | None = None
        self.current: RunT | None = None
        self.stopped = False
        self._unhealthy = False
        self._backoff_ms = spec.restart.initial_backoff_ms
        self._task: asyncio.Task[None] | None = None
        self._health: asyncio.Task[None] | None = None

    # -- state ------------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The ManagedProcessInfo JSON object."""
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "restart_count": self.restart_count,
            "restart": self.restart_config.to_json(),
            "health_check": None if self.health_check is None else self.health_check.to_json(),
            "health_status": self.health_status,
            "consecutive_health_failures": self.consecutive_health_failures,
            "last_exit": self.last_exit,
            "last_error": self.last_error,
            "next_restart_at": self.next_restart_at,
        }

    @property
    def active(self) -> bool:
        """True until it is stopped for good (a name is taken while active)."""
        return self.status != "stopped"

    # -- runs -------------------------------------------------------------------------------------

    async def start(self) -> RunT:
        """The first run; raises StartError (nothing is kept then)."""
        run = await self.table.spawn(self.spec, self)
        self._began(run)
        self._task = asyncio.ensure_future(self._watch(run))
        return run

    def _began(self, run: RunT) -> None:
        previous, self.current = self.current, run
        if previous is not None:
            self.table.retire(previous)
        self.status = "running"
        self.next_restart_at = None
        self.last_error = None
        self._unhealthy = False
        self.consecutive_health_failures = 0
        if self.health_check is not None:
            self.health_status = "starting"
            self._health = asyncio.ensure_future(self._check_health(run))

    async def _check_health(self, run: RunT) -> None:
        check = self.health_check
        assert check is not None
        await asyncio.sleep(check.initial_delay_ms / 1000)
        while not run.finished and self.current is run:
            if await _probe(check):
                self.consecutive_health_failures = 0
                self.health_status = "healthy"
            else:
                self.consecutive_health_failures += 1
                if self.consecutive_health_failures >= check.failure_threshold:
                    self.health_status = "unhealthy"
                    self._unhealthy = True
                    run.kill()  # its whole tree; the watcher applies the restart policy
                    return
            await asyncio.sleep(check.interval_ms / 1000)

    def _ended(self, run: RunT) -> None:
        self.last_exit = {
            "exit_code": run.exit_code,
            "signal": run.signal,
            "oom_killed": False,
            "ended_at": run.ended_at or _now_ms(),
        }
        if self._health is not None:
            self._health.cancel()
            self._health = None

    def _may_restart(self, failed: bool) -> bool:
        config = self.restart_config
        if self.stopped or config.policy == "never":
            return False
        if config.max_restarts is not None and self.restart_count >= config.max_restarts:
            return False
        return config.policy == "always" or failed

    async def _watch(self, run: RunT) -> None:
        """Wait for each run to end, then start the next per the policy (with backoff)."""
        while True:
            await run.wait_finished()
            self._ended(run)
            failed = self._unhealthy or run.signal is not None or (run.exit_code or 0) != 0
            while True:
                if not self._may_restart(failed):
                    self.status = "stopped"
                    self.next_restart_at = None
                    return
                self.status = "backing_off"
                delay = max(MIN_BACKOFF_MS, self._backoff_ms)
                self.next_restart_at = _now_ms() + delay
                self._backoff_ms = min(self.restart_config.max_backoff_ms, max(1, self._backoff_ms * 2))
                await asyncio.sleep(delay / 1000)
                self.status = "starting"
                try:
                    run = await self.table.spawn(self.spec, self)
                except StartError as exc:
                    self.restart_count += 1
                    self.last_error = str(exc)  # a failed start is a failed run
                    failed = True
                    continue
                self.restart_count += 1  # counted with the new run in place: never seen apart
                break
            self._began(run)

    async def _stop_run(self, run: RunT | None, grace: float) -> None:
        """SIGTERM the run's group and tree, SIGKILL after ``grace`` if it is still there."""
        if run is None:
            return
        if not run.finished:
            run.terminate_tree()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.wait_finished(), grace)
        run.kill()  # anything left of its tree

    def cancel(self) -> None:
        """Stop watching runs and checking health (the current run is left alone)."""
        for task in (self._task, self._health):
            if task is not None and not task.done():
                task.cancel()
        self._task = self._health = None

    def stop(self) -> asyncio.Task[None]:
        """Stop for good (no restart); the run gets SIGTERM, then SIGKILL after the grace."""
        self.stopped = True
        self.cancel()
        self.status = "stopped"
        self.next_restart_at = None
        run = self.current

        async def finish() -> None:
            await self._stop_run(run, self.stop_grace)
            if run is not None and run.finished:
                self._ended(run)

        return asyncio.ensure_future(finish())

    async def restart(self) -> RunT:
        """Stop the current run (SIGTERM, SIGKILL after the grace) and start a new one at once."""
        self.cancel()
        run = self.current
        await self._stop_run(run, self.stop_grace)
        if run is not None:
            await run.wait_finished()
            self._ended(run)
        self.stopped = False
        self._backoff_ms = self.restart_config.initial_backoff_ms
        self.status = "starting"
        try:
            new = await self.table.spawn(self.spec, self)
        except StartError as exc:
            self.last_error = str(exc)
            self.status = "stopped"
            raise
        self.restart_count += 1
        self._began(new)
        self._task = asyncio.ensure_future(self._watch(new))
        return new
