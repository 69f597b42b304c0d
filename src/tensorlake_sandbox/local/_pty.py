"""Interactive terminals for the local sandbox: the PTY REST operations and their binary websocket.

Each session is a real pseudo-terminal: ``os.openpty()``, the command in a new session
(``setsid``) with the terminal's slave side as its controlling tty, stdin, stdout and stderr.
The semantics follow ``openapi.yaml`` (tag ``sandbox-pty``) and the Tensorlake daemon:

- at most `MAX_SESSIONS` sessions (exited ones count until removed): 429 ``TOO_MANY_SESSIONS``;
- a token of 64 hex characters per session, compared in constant time, reusable to reattach;
- nothing is sent to a client before its READY frame; then the history (the last
  `HISTORY_BYTES` of output) is replayed, then live output, in chunks of at most
  `CHUNK_BYTES`; output produced between connecting and READY over `PRE_READY_LIMIT`
  closes that client with 1008;
- when the process ends: an exit frame (``0x03`` + i32), then close 1000 ``exit:<code>``
  (``-1`` when a signal ended it); a killed session closes its clients with 1001;
- kill (DELETE) is the daemon's: SIGHUP to the terminal's process group at once, and the
  session is shown dead from then on (``is_alive`` false, ``exit_code`` null, ``ended_at``
  set) for `KILL_GRACE` seconds; then everything it started still running (detached
  children included, see _tree.py) gets SIGKILL and the session is removed;
- with no client attached for `IDLE_TIMEOUT` seconds the process is killed; an exited
  session stays visible (and attachable: history, then the exit) for `EXITED_TTL` seconds;
- the websocket takes the session's token alone (``X-PTY-Token`` or ``?token=``), as the
  docs' examples connect; a bearer key that is sent must still be right (_security.py);
- until the first client is READY (or for `ATTACH_GRACE` seconds), output is held back once
  the history is full, so the client that opened the session sees all of it.

Memory is bounded: output goes to each client through a queue of at most `QUEUE_CHUNKS`
chunks; while any client's queue is full the terminal is not read, so the program blocks on
its writes (flow control, as on a real terminal). A client that pauses keeps its connection
and loses nothing, however long it pauses; only when it holds back *other* clients that are
ready for more, for `STALL_TIMEOUT` seconds, is it closed with 1008 (policy), so that it
cannot stall them forever.

Children never outlive the server: each runs in its own process group, is told by
``PR_SET_PDEATHSIG`` (Linux) to die with the server's thread, and `PtyTable.shutdown` kills
every tree (detached children included).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hmac
import os
import secrets
import signal
import struct
import subprocess
import termios
import time
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketState

from ._resource import kill_or_describe
from ._tree import MARKER, kill_tree, marker_value
from ._tree import preexec as _tree_preexec
from ._validation import (
    MAX_COLS,
    MAX_ROWS,
    SPAWN_FAILED,
    PtySpec,
    TooLarge,
    parse_resize,
    read_json,
    spawn_error,
)

__all__ = [
    "CHUNK_BYTES",
    "HISTORY_BYTES",
    "MAX_SESSIONS",
    "PtySession",
    "PtyTable",
    "pty_routes",
]

MAX_SESSIONS = 64
HISTORY_BYTES = 1024 * 1024
PRE_READY_LIMIT = 1024 * 1024
CHUNK_BYTES = 4096
QUEUE_CHUNKS = 64
IDLE_TIMEOUT = 300.0
EXITED_TTL = 60.0
KILL_GRACE = 5.0
STALL_TIMEOUT = 30.0
# Until its first client is READY, or for this many seconds after it started, a session's
# output is held back once its history is full, so that the client that opened it sees all
# of it (a terminal program starts before anyone is attached).
ATTACH_GRACE = 10.0
_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-"

OP_DATA, OP_RESIZE, OP_READY, OP_EXIT = 0x00, 0x01, 0x02, 0x03
CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_POLICY = 1000, 1001, 1008

# Queue sentinels: the end of output (exit frame and close) and a kill (close 1001).
_EXIT = object()
_KILLED = object()


def _now_ms() -> int:
    return int(time.time() * 1000)


def _clamp(value: int, high: int) -> int:
    return max(1, min(high, value))


def _child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The server's environment without Tensorlake keys, TERM for this terminal, then the request's."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("TENSORLAKE_")}
    env["TERM"] = "xterm-256color"  # the terminal's type, not the server's
    env.update(extra)
    return env


def _take_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _preexec() -> Any:
    """Runs in the child after setsid: take the terminal as controlling tty; die with the server;
    keep what it starts below it (see _tree.py)."""
    return _tree_preexec(_take_terminal)


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


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


class _Client:
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
        table: PtyTable,
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
        self.clients: set[_Client] = set()  # attached and READY
        self.pending: set[_Client] = set()  # attached, before READY
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
                        client.queue.put_nowait(_KILLED)
                self._update_room()
                # Let the websocket handlers run: a program writing without pause would
                # otherwise keep the loop here, and a READY would wait behind its output.
                await asyncio.sleep(0)
        finally:
            await self._exited.wait()
            self.ended_at = _now_ms()
            self.ended.set()
            for client in self.clients:
                client.queue.put_nowait(_EXIT)
            self.table.schedule_removal(self, self.table.exited_ttl)

    def _update_room(self) -> None:
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
                    client.queue.put_nowait(_KILLED)
                self._update_room()
                # Let the websocket handlers run: a program writing without pause would
                # otherwise keep the loop here, and a READY would wait behind its output.
                await asyncio.sleep(0)

    async def _reap(self) -> None:
        returncode = await self.proc.wait()
        self.exit_code = returncode if returncode >= 0 else None
        self._exited.set()
        self._wake_reader()

    # -- clients --------------------------------------------------------------------------------

    def attach(self) -> _Client:
        client = _Client(self.produced)
        self.pending.add(client)
        self._idle_since = None
        return client

    def ready(self, client: _Client) -> bool:
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
            client.queue.put_nowait(_EXIT)
        else:
            self.clients.add(client)
        self._update_room()
        return True

    def detach(self, client: _Client) -> None:
        self.clients.discard(client)
        self.pending.discard(client)
        self._update_room()
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
        self.rows, self.cols = _clamp(rows, MAX_ROWS), _clamp(cols, MAX_COLS)
        if self.is_alive:
            with contextlib.suppress(OSError):
                _set_size(self.master, self.rows, self.cols)  # the kernel sends SIGWINCH

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
            client.queue.put_nowait(_KILLED)

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


class PtyTable:
    """Every PTY session of one local sandbox."""

    def __init__(self, *, kill_grace: float = KILL_GRACE, exited_ttl: float = EXITED_TTL) -> None:
        self._sessions: dict[str, PtySession] = {}
        self.idle_timeout = IDLE_TIMEOUT
        self.kill_grace = kill_grace
        self.exited_ttl = exited_ttl
        self._killing: set[asyncio.Task[None]] = set()
        self._janitor: asyncio.Task[None] | None = None
        self._removals: set[asyncio.TimerHandle] = set()

    def __iter__(self) -> Iterator[PtySession]:
        return iter(list(self._sessions.values()))

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: str) -> PtySession | None:
        return self._sessions.get(session_id)

    async def create(
        self,
        command: str,
        args: list[str],
        env: Mapping[str, str],
        working_dir: str | None,
        rows: int,
        cols: int,
    ) -> PtySession:
        """Start ``command`` on a new terminal; raises OSError when it cannot be started."""
        session_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(21))
        child_env = _child_env(env)
        child_env[MARKER] = marker_value(f"t{session_id}")  # see _tree.py
        master, slave = os.openpty()
        try:
            _set_size(slave, rows, cols)
            proc = await asyncio.create_subprocess_exec(
                command,
                *args,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=child_env,
                cwd=working_dir,
                start_new_session=True,
                preexec_fn=_preexec(),
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        session = PtySession(self, proc, master, command, args, rows, cols, session_id)
        self._sessions[session.session_id] = session
        if self._janitor is None:
            self._janitor = asyncio.ensure_future(self._watch_idle())
        return session

    def schedule_removal(self, session: PtySession, delay: float) -> None:
        loop = asyncio.get_running_loop()

        def remove() -> None:
            self._removals.discard(handle)
            if self._sessions.get(session.session_id) is session:
                del self._sessions[session.session_id]
                session.close()

        handle = loop.call_later(delay, remove)
        self._removals.add(handle)

    def kill(self, session: PtySession) -> None:
        """DELETE: hang up now; SIGKILL what is left and remove the session after the grace."""
        if session.killed:
            return

        async def finish() -> None:
            try:
                # Visible (dead) for the whole grace, even when the process ended at once.
                await asyncio.sleep(self.kill_grace)
                await session.kill(0)
            finally:
                if self._sessions.get(session.session_id) is session:
                    del self._sessions[session.session_id]

        session.hang_up()
        task = asyncio.ensure_future(finish())
        self._killing.add(task)
        task.add_done_callback(self._killing.discard)

    async def _watch_idle(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, max(0.05, self.idle_timeout / 4)))
            now = time.monotonic()
            for session in self:
                if session.is_alive and session.idle_for(now) > self.idle_timeout:
                    self.kill(session)

    async def shutdown(self) -> None:
        if self._janitor is not None:
            self._janitor.cancel()
        for handle in self._removals:
            handle.cancel()
        for task in list(self._killing):
            task.cancel()
        sessions = list(self._sessions.values())
        self._sessions.clear()
        await asyncio.gather(*(s.kill(grace=0.5) for s in sessions), return_exceptions=True)


# -- HTTP and websocket handlers --------------------------------------------------------------


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "code": code}, status_code=status)


def _refusal(status: int, code: str, message: str) -> JSONResponse:
    """A refused websocket upgrade. It ends its connection: the client sent no body to frame and
    may not read to the end, so a pooled client must not send its next request on it."""
    response = _error(status, code, message)
    response.headers["connection"] = "close"
    return response


def _table(request: Request | WebSocket) -> PtyTable:
    table: PtyTable = request.app.state.pty_table
    return table


async def sessions_endpoint(request: Request) -> Response:
    table = _table(request)
    if request.method == "GET":
        return JSONResponse({"sessions": [s.info() for s in table]})
    try:
        spec = PtySpec.parse(await read_json(request))
    except TooLarge as exc:
        headers = None if exc.complete else {"connection": "close"}
        return JSONResponse(
            {"error": str(exc), "code": "PAYLOAD_TOO_LARGE"}, status_code=413, headers=headers
        )
    except ValueError as exc:
        return _error(400, "BAD_REQUEST", str(exc))
    if len(table) >= MAX_SESSIONS:
        return _error(429, "TOO_MANY_SESSIONS", f"at most {MAX_SESSIONS} PTY sessions; kill one first")
    try:
        session = await table.create(
            spec.command, spec.args, spec.env, spec.working_dir, spec.rows, spec.cols
        )
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        # The same answer as a process start that cannot run (the daemon says 500; see README).
        return _error(400, SPAWN_FAILED, str(spawn_error(spec.command, exc)))
    return JSONResponse({"session_id": session.session_id, "token": session.token}, status_code=201)


def _lookup(request: Request) -> tuple[str, PtySession | None]:
    session_id: str = request.path_params["session_id"]
    return session_id, _table(request).get(session_id)


def _not_found(session_id: str) -> JSONResponse:
    return _error(404, "NOT_FOUND", f"PTY session {session_id} not found")


async def session_endpoint(request: Request) -> Response:
    session_id, session = _lookup(request)
    return await kill_or_describe(request, session_id, session, _not_found, _table(request).kill)


async def resize_endpoint(request: Request) -> Response:
    session_id, session = _lookup(request)
    try:
        rows, cols = parse_resize(await read_json(request))
    except TooLarge as exc:
        headers = None if exc.complete else {"connection": "close"}
        return JSONResponse(
            {"error": str(exc), "code": "PAYLOAD_TOO_LARGE"}, status_code=413, headers=headers
        )
    except ValueError as exc:
        return _error(400, "BAD_REQUEST", str(exc)) if session is not None else _not_found(session_id)
    if session is None:
        return _not_found(session_id)
    session.resize(rows, cols)
    return Response(status_code=204)


async def _send_output(websocket: WebSocket, session: PtySession, client: _Client) -> None:
    while True:
        item = await client.queue.get()
        session._update_room()
        if item is _EXIT:
            code = session.exit_frame_code
            await websocket.send_bytes(struct.pack(">Bi", OP_EXIT, code))
            await websocket.close(CLOSE_NORMAL, f"exit:{code}")
            return
        if item is _KILLED:
            if client.overflow:
                await websocket.close(CLOSE_POLICY, "output before READY exceeded 1 MiB")
            elif client.close_code == CLOSE_POLICY:
                await websocket.close(CLOSE_POLICY, "client too slow")
            else:
                await websocket.close(CLOSE_GOING_AWAY, "session terminated")
            return
        assert isinstance(item, bytes)
        await websocket.send_bytes(b"\x00" + item)


async def websocket_endpoint(websocket: WebSocket) -> None:
    session_id: str = websocket.path_params["session_id"]
    session = _table(websocket).get(session_id)
    given = websocket.headers.get("x-pty-token") or websocket.query_params.get("token") or ""
    expected = session.token if session is not None else secrets.token_hex(32)
    token_ok = hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())
    if session is None:
        await websocket.send_denial_response(
            _refusal(404, "SESSION_NOT_FOUND", f"PTY session {session_id} not found")
        )
        return
    if not token_ok:
        await websocket.send_denial_response(
            _refusal(403, "INVALID_TOKEN", "missing or wrong PTY token: send it as the X-PTY-Token header")
        )
        return
    await websocket.accept()
    client = session.attach()
    sender: asyncio.Task[None] | None = None
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            frame = message.get("bytes")
            if not frame:
                continue  # text and empty frames are ignored
            opcode = frame[0]
            if opcode == OP_DATA:
                await session.write(frame[1:])
            elif opcode == OP_RESIZE and len(frame) == 5:
                cols, rows = struct.unpack(">HH", frame[1:])
                session.resize(rows, cols)
            elif opcode == OP_READY and sender is None:
                if not session.ready(client):
                    await websocket.close(CLOSE_POLICY, "output before READY exceeded 1 MiB")
                    break
                sender = asyncio.ensure_future(_send_output(websocket, session, client))
            elif opcode == OP_READY and client.overflow:
                break
            if client.overflow and sender is None:
                await websocket.close(CLOSE_POLICY, "output before READY exceeded 1 MiB")
                break
    finally:
        session.detach(client)
        if sender is not None:
            if not sender.done():
                sender.cancel()
            with contextlib.suppress(BaseException):
                await sender
        if websocket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await websocket.close(CLOSE_NORMAL)


def pty_routes() -> list[BaseRoute]:
    """The PTY routes; the app must hold a `PtyTable` in ``app.state.pty_table``."""
    base = "/api/v1/pty"
    one = base + "/{session_id}"
    return [
        Route(base, sessions_endpoint, methods=["GET", "POST"]),
        Route(one, session_endpoint, methods=["GET", "DELETE"]),
        Route(one + "/resize", resize_endpoint, methods=["POST"]),
        WebSocketRoute(one + "/ws", websocket_endpoint),
    ]
