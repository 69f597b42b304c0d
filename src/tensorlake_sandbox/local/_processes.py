"""The process table: the processes a local sandbox started, their stdin pipes and captured output.

Everything here runs on the server's event loop thread (processes are forked from it).

Ownership. Each process starts in its own session and process group, whose id is its pid.
The server does not reap a process when it exits: its leader stays a zombie, which keeps
the pid (and so the process group id) from being reused by the kernel, until the process
is evicted from the table or the server stops. So signalling the group can never reach a
stranger: the group is the one the server created, or empty. On Linux the exit is watched
through a pidfd (no thread, no polling); elsewhere a thread waits with ``WNOWAIT``.

Dying with the server. Children are told by ``PR_SET_PDEATHSIG`` (Linux) to die with SIGKILL
when the server's thread that forked them ends, so even a SIGKILLed server leaves no
process it started directly (their own children are not covered: they are killed by a
clean shutdown, which SIGKILLs every group).

Status. It turns final as soon as the process exits and its output pipes reached end of
file, or `DRAIN_GRACE` seconds after the exit, whichever is first: something it left in
the background may hold the pipes open for ever. Reading goes on after that.

Memory. Each process keeps at most `PROCESS_OUTPUT_BUDGET` bytes of output, and the table at
most `TOTAL_OUTPUT_BUDGET` across processes and `RETAINED_FINISHED` finished processes. Beyond
a budget, the oldest lines are dropped and the oldest finished processes evicted (their group
is killed, they are reaped, and their pid answers 404 from then on), but never a line that an
attached follower (a follow or run stream) has not read yet: while one lags that far behind,
the process's output pipes are not read, so the process blocks on its writes as it would on a
full pipe (backpressure). A follower that starts after lines were dropped sees the gap in the
positions of its events.

Long lines. A line longer than `MAX_LINE` bytes is stored as pieces of at most that size (cut
at a UTF-8 character boundary); every piece but the last is marked as continued, and follow
events say so (``"continued": true``), so a client can put the line back together.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal as _signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from ._output import Batch, OutputLog, StreamName
from ._supervisor import STOP_GRACE, Supervisor
from ._tree import MARKER, child_environment, kill_tree, kill_trees, marker_value, preexec
from ._validation import StartSpec, spawn_error

__all__ = [
    "ATTACH_GRACE",
    "DRAIN_GRACE",
    "MAX_LINE",
    "PROCESS_OUTPUT_BUDGET",
    "RETAINED_FINISHED",
    "TOTAL_OUTPUT_BUDGET",
    "ManagedProcess",
    "NameTaken",
    "NotManaged",
    "ProcessTable",
    "StdinNotWritable",
]

# Bytes of output kept per process (line bytes plus bookkeeping, see _output.py).
PROCESS_OUTPUT_BUDGET = 16 * 1024 * 1024
# Bytes of output kept across all processes of one server.
TOTAL_OUTPUT_BUDGET = 64 * 1024 * 1024
# Finished processes kept listed; the oldest are evicted beyond this.
RETAINED_FINISHED = 256
# Until its first follower attaches, or for this many seconds after it started, a process's
# output over the budget is held back (not dropped): the client that started it is on its way.
ATTACH_GRACE = 5.0
# How long a finished process waits for its output pipes to reach end of file.
DRAIN_GRACE = 0.5
# The longest line kept whole (a longer one is stored as marked pieces, see above).
MAX_LINE = 1024 * 1024

_PIDFD = sys.platform == "linux" and hasattr(os, "pidfd_open") and hasattr(os, "P_PIDFD")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


_PREEXEC = preexec()


class NameTaken(Exception):
    """A managed process that is not stopped already has this name (409)."""


class NotManaged(Exception):
    """Restart of a process that is not managed (400)."""


class StdinNotWritable(Exception):
    """The process's stdin is not an open pipe: never opened, closed, or the process has exited."""


class _Reader(asyncio.Protocol):
    """Reads one output pipe into the process's log."""

    def __init__(self, owner: ManagedProcess, stream: Literal["stdout", "stderr"]) -> None:
        self._owner = owner
        self._stream = stream
        self._buf = bytearray()
        self.done = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        now = _now_ms()
        if b"\n" in data:
            cut = buf.rfind(b"\n") + 1
            block = bytes(buf[:cut])
            del buf[:cut]
            self._owner.add_output(self._stream, block, now)
        limit = self._owner.max_line
        while len(buf) > limit:  # (the byte after the cut is there to check)
            cut = limit
            while cut > limit - 4 and (buf[cut] & 0xC0) == 0x80:
                cut -= 1  # not inside a UTF-8 character
            self._owner.add_output(self._stream, bytes(buf[:cut]) + b"\n", now, continued=True)
            del buf[:cut]

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._buf:
            self._owner.add_output(self._stream, bytes(self._buf) + b"\n", _now_ms())
            self._buf = bytearray()
        if not self.done.done():
            self.done.set_result(None)


class _Cursor:
    """Where an attached follower is: the absolute index of the next line it needs."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index


class _Writer(asyncio.BaseProtocol):
    """Flow control for the stdin pipe."""

    def __init__(self) -> None:
        self._can_write = asyncio.Event()
        self._can_write.set()
        self.lost = False

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._can_write.set()

    async def drain(self) -> None:
        await self._can_write.wait()
        if self.lost:
            raise BrokenPipeError


class ManagedProcess:
    """One process started by the local sandbox."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        *,
        handle: int,
        spec: StartSpec,
        table: ProcessTable,
        supervisor: Supervisor[ManagedProcess] | None = None,
    ) -> None:
        self._popen = popen
        # The supervisor of a managed process (one per name, across its runs), else None.
        self.supervisor = supervisor
        self.pid = popen.pid
        self.handle = handle
        self.command = spec.command
        self.args = list(spec.args)
        self.stdin_pipe = spec.stdin_pipe
        self.started_at = _now_ms()
        self.ended_at: int | None = None
        self.status = "running"
        self.exit_code: int | None = None
        self.signal: int | None = None
        # The leader's exit, as (exit_code, signal), before the status turns final.
        self.leader_exit: tuple[int | None, int | None] | None = None
        # Set when a run's timeout killed it.
        self.timed_out = False
        self.stdin_lock = asyncio.Lock()
        self._stdin: asyncio.WriteTransport | None = None
        self._stdin_protocol: _Writer | None = None
        self._stdin_closed = not spec.stdin_pipe
        self.log = OutputLog(table.process_output_budget, table.account)
        self.log.floor = self._floor
        self.max_line = table.max_line
        self._table = table
        self._readers: list[_Reader] = []
        self._reader_transports: list[asyncio.ReadTransport] = []
        self._cursors: set[_Cursor] = set()
        self.paused = False  # its output pipes are not read (backpressure)
        self._holding = True  # no follower yet, within ATTACH_GRACE of the start
        self._grace = asyncio.get_running_loop().call_later(table.attach_grace, self._end_grace)
        self._pidfd: int | None = None
        self._reaped = False
        self._changed = asyncio.Event()
        self._finished = asyncio.Event()
        self._exited: asyncio.Future[tuple[int | None, int | None]] = (
            asyncio.get_running_loop().create_future()
        )
        self._task: asyncio.Task[None] | None = None

    async def connect_pipes(self) -> None:
        """Watch for its exit and connect its pipes to the loop (once, right after the spawn)."""
        loop = asyncio.get_running_loop()
        popen = self._popen
        if _PIDFD:
            self._pidfd = os.pidfd_open(self.pid)
            loop.add_reader(self._pidfd, self._on_pidfd)
        else:
            threading.Thread(target=self._wait_in_thread, args=(loop,), daemon=True).start()
        for pipe, stream in ((popen.stdout, "stdout"), (popen.stderr, "stderr")):
            if pipe is not None:
                reader = _Reader(self, stream)  # type: ignore[arg-type]
                read_transport, _ = await loop.connect_read_pipe(lambda r=reader: r, pipe)  # type: ignore[misc]
                self._readers.append(reader)
                self._reader_transports.append(read_transport)
        if popen.stdin is not None:
            self._stdin, self._stdin_protocol = await loop.connect_write_pipe(_Writer, popen.stdin)
        self._task = asyncio.create_task(self._run())

    # -- exit ---------------------------------------------------------------------------------

    def _on_pidfd(self) -> None:
        assert self._pidfd is not None
        try:
            result = os.waitid(os.P_PIDFD, self._pidfd, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # reaped by someone else (SIGCHLD ignored?): treat as gone
            result = None
            self._reaped = True
        if result is None and not self._reaped:
            return  # spurious wake-up
        asyncio.get_running_loop().remove_reader(self._pidfd)
        self._set_exit(result)

    def _wait_in_thread(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            result = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
        except ChildProcessError:
            result = None
        with contextlib.suppress(RuntimeError):  # the loop is closed: the server is gone
            loop.call_soon_threadsafe(self._set_exit, result)

    def _set_exit(self, result: Any) -> None:
        if self._exited.done():
            return
        if result is None:
            exit_info: tuple[int | None, int | None] = (None, _signal.SIGKILL)
        elif result.si_code == os.CLD_EXITED:
            exit_info = (result.si_status, None)
        else:
            exit_info = (None, result.si_status)
        self.leader_exit = exit_info
        self._exited.set_result(exit_info)

    async def _run(self) -> None:
        exit_code, signal = await self._exited
        if self._stdin is not None:
            self._stdin.close()
        await self._drain()
        if signal is not None:
            self.status, self.signal = "signaled", signal
        else:
            self.status, self.exit_code = "exited", exit_code
        self.ended_at = _now_ms()
        self._finished.set()
        self._notify()
        self._table.process_finished(self)

    async def _drain(self) -> None:
        """Wait for the output pipes' end of file, for at most DRAIN_GRACE seconds of reading.

        Time spent paused (a follower lagging behind) does not count: what the process wrote
        before exiting is still in the pipe, and is read once the follower catches up.
        """
        if not self._readers:
            return
        loop = asyncio.get_running_loop()
        done = asyncio.ensure_future(asyncio.gather(*(asyncio.shield(r.done) for r in self._readers)))
        left = DRAIN_GRACE
        try:
            while left > 0 and not done.done():
                began, paused = loop.time(), self.paused
                await asyncio.wait([done], timeout=min(left, 0.05))
                if not (paused and self.paused):
                    left -= loop.time() - began
        finally:
            done.cancel()

    # -- state --------------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """True once the status is final (``exited`` or ``signaled``)."""
        return self._finished.is_set()

    @property
    def followed(self) -> bool:
        """True while a follower (a follow or run stream) is attached."""
        return bool(self._cursors)

    @property
    def protected(self) -> bool:
        """True while none of its output may be dropped: followed, or within ATTACH_GRACE of its
        start with no follower yet."""
        return bool(self._cursors) or self._holding

    @property
    def stdin_writable(self) -> bool:
        return (
            not self._stdin_closed
            and self._stdin is not None
            and not self._stdin.is_closing()
            and self.leader_exit is None
        )

    def info(self) -> dict[str, Any]:
        """The ProcessInfo JSON object."""
        return {
            "handle": self.handle,
            "pid": self.pid,
            "status": self.status,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "stdin_writable": self.stdin_writable,
            "command": self.command,
            "args": list(self.args),
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "oom_killed": False,
            "managed": None if self.supervisor is None else self.supervisor.info(),
        }

    # -- output -------------------------------------------------------------------------------

    def add_output(
        self, stream: Literal["stdout", "stderr"], block: bytes, timestamp: int, continued: bool = False
    ) -> None:
        """Store lines read from ``stream`` (by its `_Reader`); pause reading when over a budget."""
        self.log.add(stream, block.replace(b"\r\n", b"\n"), timestamp, continued)
        if (self._cursors or self._holding) and (self.log.over_budget or self._table.over_budget):
            self._table.enforce_limits()
            if self.log.over_budget or self._table.over_budget:
                self.pause_reading()
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _floor(self) -> int | None:
        if self._holding:
            return self.log.first
        return min((c.index for c in self._cursors), default=None)

    def _end_grace(self) -> None:
        self._holding = False
        if self._table.paused_processes:
            self._advanced()

    def pause_reading(self) -> None:
        """Stop reading its output pipes (backpressure: the process blocks on a full pipe)."""
        if not self.paused:
            self.paused = True
            self._table.paused_processes.add(self)
            for transport in self._reader_transports:
                if not transport.is_closing():
                    transport.pause_reading()

    def resume_reading(self) -> None:
        """Read its output pipes again."""
        if self.paused:
            self.paused = False
            self._table.paused_processes.discard(self)
            for transport in self._reader_transports:
                if not transport.is_closing():
                    transport.resume_reading()

    def _advanced(self) -> None:
        """A follower moved on (or went away): drop what nobody needs; read the pipes again if paused."""
        if self._table.paused_processes:
            self.log.trim(self.log.budget * 3 // 4)
            self._table.enforce_limits()
            self._table.resume_paused()

    def attach(self, stream: StreamName, position: int = 0) -> _Cursor:
        """Register a follower from ``position`` of ``stream``: nothing from there on is dropped."""
        cursor = _Cursor(self.log.locate(stream, position))
        self._cursors.add(cursor)
        if self._holding:
            self._holding = False
            self._grace.cancel()
        return cursor

    async def follow(self, stream: StreamName, cursor: _Cursor) -> AsyncIterator[Batch]:
        """Lines of ``stream`` from ``cursor`` (see `attach`): captured, then live, until the status
        is final and all was read. The follower is detached when the iterator ends or is closed."""
        try:
            i = cursor.index
            while True:
                stop = self.log.end
                for batch in self.log.batches(i, stop):
                    if stream == "output" or batch.stream == stream:
                        yield batch
                i = cursor.index = max(stop, self.log.first)
                self._advanced()
                if i < self.log.end:
                    continue
                if self.finished:
                    return
                await self._changed.wait()
        finally:
            self._cursors.discard(cursor)
            self._advanced()

    # -- stdin --------------------------------------------------------------------------------

    async def write_stdin(self, chunk: bytes) -> None:
        """Write and wait until the pipe takes it (backpressure). Call with `stdin_lock` held."""
        transport, protocol = self._stdin, self._stdin_protocol
        if transport is None or protocol is None or not self.stdin_writable or protocol.lost:
            raise StdinNotWritable
        try:
            transport.write(chunk)
            await protocol.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise StdinNotWritable from exc

    async def close_stdin(self) -> None:
        """Deliver EOF to the process; closing twice is fine. Call with `stdin_lock` held."""
        if not self.stdin_pipe:
            raise StdinNotWritable
        self._stdin_closed = True
        if self._stdin is not None:
            self._stdin.close()

    # -- signals ------------------------------------------------------------------------------

    def group_is_ours(self) -> bool:
        """True while the leader is unreaped, so its pid still names the group this server made."""
        if self._reaped:
            return False
        if self._pidfd is not None:
            try:
                _signal.pidfd_send_signal(self._pidfd, 0)
            except ProcessLookupError:
                self._reaped = True
                return False
            except PermissionError:
                return False
        return True

    def send_signal(self, sig: int) -> None:
        """Signal the process group with ``sig`` (checked by `parse_signal`). Raises ValueError for a
        finished process."""
        if self.leader_exit is not None or not self.group_is_ours():
            raise ValueError(f"process {self.pid} is not running")
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            raise ValueError(f"process {self.pid} is not running") from None

    @property
    def owner(self) -> str:
        """Its name in the tree marker (see _tree.py)."""
        return f"p{self.handle}"

    def kill(self) -> None:
        """SIGKILL its process group and everything it started, detached children included."""
        kill_tree(self.pid, self.owner, _signal.SIGKILL, group=self.group_is_ours())

    def terminate_tree(self) -> None:
        """SIGTERM its process group and everything it started (a managed process's stop)."""
        kill_tree(self.pid, self.owner, _signal.SIGTERM, group=self.group_is_ours())

    async def wait_finished(self) -> None:
        await self._finished.wait()

    def release(self, kill: bool = True) -> None:
        """Kill what is left of its tree (unless ``kill`` is False: already done), reap it and drop
        its output (eviction, shutdown)."""
        if kill:
            self.kill()
        if self._pidfd is not None:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self._pidfd)
        if not self._reaped and self._exited.done():
            with contextlib.suppress(ChildProcessError):
                if self._pidfd is not None:
                    os.waitid(os.P_PIDFD, self._pidfd, os.WEXITED | os.WNOHANG)
                else:
                    os.waitpid(self.pid, os.WNOHANG)
            self._reaped = True
            # Tell subprocess it was reaped, so that it never waits for a reused pid.
            self._popen.returncode = -1
        if self._pidfd is not None and self._reaped:
            os.close(self._pidfd)
            self._pidfd = None
        for transport in self._reader_transports:
            transport.close()
        if self._stdin is not None:
            self._stdin.close()
        self._cursors.clear()
        self._holding = False
        self._grace.cancel()
        self._table.paused_processes.discard(self)
        self.log.clear()


class ProcessTable:
    """The processes of one local sandbox, by pid, within the retention and output budgets."""

    def __init__(
        self,
        *,
        retained_finished: int = RETAINED_FINISHED,
        total_output_budget: int = TOTAL_OUTPUT_BUDGET,
        stop_grace: float = STOP_GRACE,
        process_output_budget: int = PROCESS_OUTPUT_BUDGET,
        max_line: int = MAX_LINE,
        attach_grace: float = ATTACH_GRACE,
    ) -> None:
        self.attach_grace = attach_grace
        if max_line < 4:
            raise ValueError("max_line must be at least 4 bytes")
        self.process_output_budget = process_output_budget
        self.max_line = max_line
        self.paused_processes: set[ManagedProcess] = set()
        self._by_pid: dict[int, ManagedProcess] = {}
        # Managed processes by name (only named ones; every one is reachable by its current pid).
        self._names: dict[str, Supervisor[ManagedProcess]] = {}
        self._supervisors: set[Supervisor[ManagedProcess]] = set()
        self._stopping: set[asyncio.Task[None]] = set()
        self.stop_grace = stop_grace
        self._finished_order: dict[int, ManagedProcess] = {}  # oldest finished first
        self._next_handle = 1
        self.retained_finished = retained_finished
        self.total_output_budget = total_output_budget
        self.output_bytes = 0
        self._enforce_scheduled = False
        self.evicted = 0

    def __iter__(self) -> Any:
        return iter(list(self._by_pid.values()))

    def get(self, key: int | str) -> ManagedProcess | None:
        """The process with this pid, or the current run of the managed process with this name."""
        if isinstance(key, int):
            return self._by_pid.get(key)
        supervisor = self._names.get(key)
        return None if supervisor is None else supervisor.current

    def kill(self, proc: ManagedProcess) -> None:
        """DELETE: SIGKILL an unmanaged process's tree; stop a managed one for good (SIGTERM, then
        SIGKILL after the stop grace)."""
        if proc.supervisor is not None and proc.supervisor.current is proc:
            task = proc.supervisor.stop()
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)
        else:
            proc.kill()

    @property
    def total_started(self) -> int:
        return self._next_handle - 1

    @property
    def running(self) -> int:
        return sum(1 for p in self._by_pid.values() if not p.finished)

    def account(self, delta: int) -> None:
        """A process's log grew (or shrank) by ``delta`` bytes; enforce the limits soon if over."""
        self.output_bytes += delta
        if self.output_bytes > self.total_output_budget and not self._enforce_scheduled:
            self._enforce_scheduled = True
            asyncio.get_running_loop().call_soon(self.enforce_limits)

    @property
    def over_budget(self) -> bool:
        return self.output_bytes > self.total_output_budget

    def resume_paused(self) -> None:
        """Read the pipes of paused processes again once they are back within the budgets."""
        for proc in list(self.paused_processes):
            unprotected = not proc.protected
            if unprotected or (not proc.log.over_budget and not self.over_budget):
                proc.resume_reading()

    def process_finished(self, proc: ManagedProcess) -> None:
        """``proc``'s status turned final: it counts among the retained finished processes."""
        if proc.pid in self._by_pid:
            self._finished_order[proc.pid] = proc
        self.enforce_limits()

    def retire(self, proc: ManagedProcess) -> None:
        """A managed process's previous run, replaced by a new one: no longer listed."""
        if proc.finished:
            self._evict(proc)
        else:
            proc.kill()
            self._by_pid.pop(proc.pid, None)

    def _evict(self, proc: ManagedProcess) -> None:
        supervisor = proc.supervisor
        if supervisor is not None and supervisor.current is proc and not supervisor.active:
            # The last record of a stopped managed process: its name is free from now on.
            self._supervisors.discard(supervisor)
            if supervisor.name is not None and self._names.get(supervisor.name) is supervisor:
                del self._names[supervisor.name]
        self._by_pid.pop(proc.pid, None)
        self._finished_order.pop(proc.pid, None)
        proc.release()
        self.evicted += 1

    def enforce_limits(self) -> None:
        """Evict the oldest finished processes beyond the limits; then trim the largest log."""
        self._enforce_scheduled = False
        # A finished process that a follower is still reading is not evicted.
        while (len(self._finished_order) > self.retained_finished or self.over_budget) and (
            oldest := next((p for p in self._finished_order.values() if not p.followed), None)
        ) is not None:
            self._evict(oldest)
        while self.output_bytes > self.total_output_budget:
            largest = max(self._by_pid.values(), key=lambda p: p.log.nbytes, default=None)
            if largest is None or largest.log.nbytes == 0:
                break
            before = largest.log.nbytes
            largest.log.trim(before // 2)
            if largest.log.nbytes == before:
                break

    async def start(self, spec: StartSpec) -> ManagedProcess:
        """Start a process (a supervised one when ``spec.managed``); raises StartError when it
        cannot run, NameTaken when a managed process that is not stopped has its name."""
        if not spec.managed:
            return await self.spawn(spec, None)
        if spec.name is not None:
            holder = self._names.get(spec.name)
            if holder is not None and holder.active:
                raise NameTaken(f"a managed process named {spec.name!r} is already running; kill it first")
        supervisor = Supervisor(self, spec, self.stop_grace)
        run = await supervisor.start()
        if spec.name is not None:
            old = self._names.get(spec.name)
            if old is not None:  # stopped: its record goes, the name is reused
                self._supervisors.discard(old)
                if old.current is not None:
                    self._evict(old.current)
            self._names[spec.name] = supervisor
        self._supervisors.add(supervisor)
        return run

    async def restart(self, proc: ManagedProcess) -> ManagedProcess:
        """Restart a managed process (NotManaged for any other)."""
        supervisor = proc.supervisor
        if supervisor is None or supervisor.current is not proc:
            raise NotManaged(
                f"process {proc.pid} is not a managed process: start it with a name, restart "
                "policy or health check to restart it"
            )
        if supervisor.name is not None and self._names.get(supervisor.name) is not supervisor:
            raise NameTaken(f"another managed process is now named {supervisor.name!r}")
        return await supervisor.restart()

    async def spawn(self, spec: StartSpec, supervisor: Supervisor[ManagedProcess] | None) -> ManagedProcess:
        """Start one run of ``spec``; raises StartError when it cannot run."""
        pipe, devnull = subprocess.PIPE, subprocess.DEVNULL
        handle = self._next_handle
        env = child_environment(spec.env)
        env[MARKER] = marker_value(f"p{handle}")  # see _tree.py: kill finds its detached children
        try:
            popen = subprocess.Popen(
                [spec.command, *spec.args],
                stdin=pipe if spec.stdin_pipe else devnull,
                stdout=pipe if spec.capture_stdout else devnull,
                stderr=pipe if spec.capture_stderr else devnull,
                env=env,
                cwd=spec.working_dir,
                start_new_session=True,
                preexec_fn=_PREEXEC,
                bufsize=0,
            )
        except (OSError, ValueError, TypeError, subprocess.SubprocessError) as exc:
            raise spawn_error(spec.command, exc) from None
        managed = ManagedProcess(popen, handle=handle, spec=spec, table=self, supervisor=supervisor)
        self._next_handle += 1
        self._by_pid[managed.pid] = managed
        try:
            await managed.connect_pipes()
        except BaseException:
            managed.kill()
            raise
        return managed

    async def kill_all(self, timeout: float = 5.0) -> None:
        """Kill every process tree this table started (supervisors stopped first, so nothing is
        restarted) and wait (bounded) for them to end."""
        for supervisor in list(self._supervisors):
            supervisor.stopped = True
            supervisor.cancel()
        for task in list(self._stopping):
            task.cancel()
        procs = list(self._by_pid.values())
        # One pass over /proc for every tree (see _tree.py), not one per process.
        kill_trees([(p.pid, p.owner, p.group_is_ours()) for p in procs])
        waits = [p.wait_finished() for p in procs if not p.finished]
        if waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), timeout)

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Kill every process group this table started, wait (bounded) for them, and reap them."""
        procs = list(self._by_pid.values())
        await self.kill_all(timeout)
        for p in procs:
            p.release(kill=False)
        self._by_pid.clear()
        self._finished_order.clear()
