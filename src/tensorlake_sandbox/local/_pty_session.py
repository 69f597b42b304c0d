"""One interactive terminal of the local sandbox: a pseudo-terminal, the process on it, its output.

A session is a real pseudo-terminal: ``os.openpty()``, the command in a new session
(``setsid``) with the terminal's slave side as its controlling tty, stdin, stdout and stderr
(started by `PtyTable.create`, _pty_table.py). This module holds what one session does, with
the semantics of ``openapi.yaml`` (tag ``sandbox-pty``) and the Tensorlake daemon:

- a token of 64 hex characters per session (compared in constant time by the websocket
  endpoint, _endpoints.py), reusable to reattach;
- nothing is sent to a client before its READY frame; then the history (the last
  `HISTORY_BYTES` of output) is replayed, then live output, in chunks of at most
  `CHUNK_BYTES`; output produced between connecting and READY over `PRE_READY_LIMIT`
  closes that client with 1008;
- when the process ends: an exit frame (``0x03`` + i32), then close 1000 ``exit:<code>``
  (``-1`` when a signal ended it); a killed session closes its clients with 1001;
- `PtySession.hang_up` (the start of a kill) sends SIGHUP to the terminal's process group at
  once, and the session is shown dead from then on (``is_alive`` false, ``exit_code`` null,
  ``ended_at`` set); `PtySession.kill` then SIGKILLs everything it started still running
  (detached children included, see _tree.py);
- until the first client is READY (or for `ATTACH_GRACE` seconds), output is held back once
  the history is full, so the client that opened the session sees all of it.

Memory is bounded: output goes to each client through a queue of at most `QUEUE_CHUNKS`
chunks; while any client's queue is full the terminal is not read, so the program blocks on
its writes (flow control, as on a real terminal). A client that pauses keeps its connection
and loses nothing, however long it pauses; only when it holds back *other* clients that are
ready for more, for `STALL_TIMEOUT` seconds, is it closed with 1008 (policy), so that it
cannot stall them forever.

The wire itself (opcodes, close codes, size range) is shared with the client:
``tensorlake_sandbox._terminal_protocol``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import signal
import struct
import termios
import time
from collections import deque
from collections.abc import Iterator
from typing import Any, Protocol

from .._terminal_protocol import CLOSE_POLICY
from ._tree import kill_tree
from ._validation import clamp_size

__all__ = [
    "ATTACH_GRACE",
    "CHUNK_BYTES",
    "EXIT",
    "HISTORY_BYTES",
    "KILLED",
    "KILL_GRACE",
    "PRE_READY_LIMIT",
    "QUEUE_CHUNKS",
    "STALL_TIMEOUT",
    "PtyClient",
    "PtySession",
    "set_size",
]

HISTORY_BYTES = 1024 * 1024
PRE_READY_LIMIT = 1024 * 1024
CHUNK_BYTES = 4096
QUEUE_CHUNKS = 64
KILL_GRACE = 5.0
STALL_TIMEOUT = 30.0
# Until its first client is READY, or for this many seconds after it started, a session's
# output is held back once its history is full, so that the client that opened it sees all
# of it (a terminal program starts before anyone is attached).
ATTACH_GRACE = 10.0

# Queue sentinels: the end of output (exit frame and close) and a kill (close 1001, or 1008
# for a client closed by the session: see `PtyClient.overflow` and `PtyClient.close_code`).
EXIT = object()
KILLED = object()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def set_size(fd: int, rows: int, cols: int) -> None:
    """Set the size of the terminal ``fd`` (the kernel sends SIGWINCH to its foreground group)."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class _Table(Protocol):
    """What a session needs of the table that holds it (_pty_table.py)."""

    exited_ttl: float

    def schedule_removal(self, session: PtySession, delay: float) -> None: ...


class _History:
    """The last `limit` bytes of output, kept as the chunks they were read in."""

    def __init__(self, limit: int = HISTORY_BYTES) -> None:
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._limit = limit

    def append(self, chunk: bytes) -> None:
        self._chunks.append(chunk)
        self._size += len(chunk)
        while self._size > self._limit:
            first = self._chunks[0]
            excess = self._size - self._limit
            if len(first) <= excess:
                self._chunks.popleft()
                self._size -= len(first)
            else:
                self._chunks[0] = first[excess:]
                self._size -= excess

    def __iter__(self) -> Iterator[bytes]:
        return iter(list(self._chunks))

    @property
    def full(self) -> bool:
        return self._size + CHUNK_BYTES > self._limit


class PtyClient:
    """One attached websocket: its output queue (live chunks and sentinels)."""

    def __init__(self, produced: int) -> None:
        self.queue: asyncio.Queue[object] = asyncio.Queue()  # bounded by the pump (QUEUE_CHUNKS)
        self.produced_at_connect = produced
        self.ready = False
        self.overflow = False
        self.close_code: int | None = None


class PtySession:
    """One pseudo-terminal and the process on it."""

    def __init__(
        self,
        table: _Table,
        proc: asyncio.subprocess.Process,
        master: int,
        command: str,
        args: list[str],
        rows: int,
        cols: int,
        session_id: str,
    ) -> None:
        self.table = table
        self.session_id = session_id
        self.token = secrets.token_hex(32)
        self.proc = proc
        self.master = master
        self.command, self.args = command, args
        self.rows, self.cols = rows, cols
        self.created_at = _now_ms()
        self.ended_at: int | None = None
        self.killed_at: int | None = None
        self.exit_code: int | None = None  # None while alive, or when a signal ended it
        self.history = _History()
        self.produced = 0  # bytes of output read so far
        self.clients: set[PtyClient] = set()  # attached and READY
        self.pending: set[PtyClient] = set()  # attached, before READY
        self.ended = asyncio.Event()  # the process exited and all its output was read
        self.killed = False
        self._room = asyncio.Event()  # set while every client's queue has room
        self._room.set()
        self._first_ready = asyncio.Event()  # a client was READY, or ATTACH_GRACE passed
        self._exited = asyncio.Event()
        self._wake: asyncio.Future[None] | None = None
        self._write_lock = asyncio.Lock()
        self._idle_since: float | None = time.monotonic()
        self._closed = False
        self._tasks = [
            asyncio.ensure_future(self._pump()),
            asyncio.ensure_future(self._reap()),
        ]

    @property
    def is_alive(self) -> bool:
        return self.ended_at is None and not self.killed

    @property
    def owner(self) -> str:
        """Its name in the tree marker (see _tree.py)."""
        return f"t{self.session_id}"

    def info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "session_id": self.session_id,
            "pid": self.proc.pid,
            "command": self.command,
            "args": self.args,
            "rows": self.rows,
            "cols": self.cols,
            "created_at": self.created_at,
            "is_alive": self.is_alive,
            # A killed session is dead from the kill on, as the daemon shows it.
            "ended_at": self.ended_at if self.killed_at is None else (self.ended_at or self.killed_at),
            "exit_code": None if self.killed else self.exit_code,
        }
        return info

    # -- output ---------------------------------------------------------------------------------

    def _wake_reader(self) -> None:
        if self._wake is not None:
            _set_done(self._wake)

    async def _read(self) -> bytes:
        """The next chunk of output; b"" at the end (terminal closed, or process gone and all read)."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                return os.read(self.master, CHUNK_BYTES)
            except BlockingIOError:
                if self._exited.is_set():
                    return b""  # the process is gone and its output has been read
            except OSError:
                return b""  # EIO: every slave side is closed
            self._wake = loop.create_future()
            loop.add_reader(self.master, self._wake_reader)
            try:
                await self._wake
            finally:
                loop.remove_reader(self.master)
                self._wake = None

    async def _pump(self) -> None:
        try:
            while True:
                await self._wait_for_room()
                if not self._first_ready.is_set() and self.history.full:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._first_ready.wait(), ATTACH_GRACE)
                    self._first_ready.set()
                chunk = await self._read()
                if not chunk:
                    break
                self.history.append(chunk)
                self.produced += len(chunk)
                for client in self.clients:
                    client.queue.put_nowait(chunk)
                for client in list(self.pending):
                    if self.produced - client.produced_at_connect > PRE_READY_LIMIT:
                        client.overflow = True
                        self.pending.discard(client)
                        client.queue.put_nowait(KILLED)
                self.update_room()
                # Let the websocket handlers run: a program writing without pause would
                # otherwise keep the loop here, and a READY would wait behind its output.
                await asyncio.sleep(0)
        finally:
            await self._exited.wait()
            self.ended_at = _now_ms()
            self.ended.set()
            for client in self.clients:
                client.queue.put_nowait(EXIT)
            self.table.schedule_removal(self, self.table.exited_ttl)

    def update_room(self) -> None:
        """Note whether every client's queue has room (call after taking an item off one)."""
        if any(c.queue.qsize() >= QUEUE_CHUNKS for c in self.clients):
            self._room.clear()
        else:
            self._room.set()

    async def _wait_for_room(self) -> None:
        while not self._room.is_set():
            try:
                await asyncio.wait_for(self._room.wait(), STALL_TIMEOUT)
            except TimeoutError:
                stalled = [c for c in self.clients if c.queue.qsize() >= QUEUE_CHUNKS]
                if len(stalled) == len(self.clients):
                    continue  # nobody else is waiting: the program waits for its readers
                for client in stalled:  # read nothing for STALL_TIMEOUT while others wait
                    self.detach(client)
                    client.close_code = CLOSE_POLICY
                    client.queue.put_nowait(KILLED)
                self.update_room()
                # Let the websocket handlers run: a program writing without pause would
                # otherwise keep the loop here, and a READY would wait behind its output.
                await asyncio.sleep(0)

    async def _reap(self) -> None:
        returncode = await self.proc.wait()
        self.exit_code = returncode if returncode >= 0 else None
        self._exited.set()
        self._wake_reader()

    # -- clients --------------------------------------------------------------------------------

    def attach(self) -> PtyClient:
        client = PtyClient(self.produced)
        self.pending.add(client)
        self._idle_since = None
        return client

    def ready(self, client: PtyClient) -> bool:
        """READY from ``client``: queue the history (and the exit, when over). False on pre-READY overflow."""
        if client.ready:
            return True
        if client.overflow:
            return False
        client.ready = True
        self._first_ready.set()
        self.pending.discard(client)
        # No await between the snapshot and joining: nothing is lost or sent twice.
        for chunk in self.history:
            client.queue.put_nowait(chunk)
        if self.ended.is_set():
            client.queue.put_nowait(EXIT)
        else:
            self.clients.add(client)
        self.update_room()
        return True

    def detach(self, client: PtyClient) -> None:
        self.clients.discard(client)
        self.pending.discard(client)
        self.update_room()
        if not self.clients and not self.pending:
            self._idle_since = time.monotonic()

    def idle_for(self, now: float) -> float:
        return 0.0 if self._idle_since is None else now - self._idle_since

    @property
    def exit_frame_code(self) -> int:
        return -1 if self.exit_code is None else self.exit_code

    # -- input and control ----------------------------------------------------------------------

    async def write(self, data: bytes) -> None:
        if not self.is_alive or self._closed:
            return
        loop = asyncio.get_running_loop()
        view = memoryview(data)
        async with self._write_lock:
            while view:
                try:
                    written = os.write(self.master, view)
                    view = view[written:]
                except BlockingIOError:
                    # The terminal's input queue is full: wait until it drains (rechecking that
                    # the process is still there every second).
                    ready: asyncio.Future[None] = loop.create_future()
                    loop.add_writer(self.master, _set_done, ready)
                    try:
                        await asyncio.wait([ready], timeout=1.0)
                    finally:
                        loop.remove_writer(self.master)
                    if not self.is_alive or self._closed:
                        return
                except OSError:
                    return

    def resize(self, rows: int, cols: int) -> None:
        self.rows, self.cols = clamp_size(rows, cols)
        if self.is_alive:
            with contextlib.suppress(OSError):
                set_size(self.master, self.rows, self.cols)  # the kernel sends SIGWINCH

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, sig)

    def hang_up(self) -> None:
        """SIGHUP the terminal's process group (once); close every client with 1001."""
        if not self.killed:
            self.killed = True
            self.killed_at = _now_ms()
            if self.ended_at is None:
                self._signal_group(signal.SIGHUP)
        for client in [*self.clients, *self.pending]:
            self.detach(client)
            client.queue.put_nowait(KILLED)

    async def kill(self, grace: float = KILL_GRACE) -> None:
        """`hang_up`, then after ``grace`` SIGKILL everything left of its tree; wait for the end."""
        self.hang_up()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._exited.wait()), grace)
        kill_tree(self.proc.pid, self.owner, signal.SIGKILL, group=self.proc.returncode is None)
        await self._exited.wait()
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        with contextlib.suppress(OSError):
            asyncio.get_running_loop().remove_reader(self.master)
        with contextlib.suppress(OSError):
            os.close(self.master)
