"""Every endpoint of the local sandbox: the process API of openapi.yaml, the follow (SSE) and run
streams, and the PTY operations with their binary websocket.

Where they are served (paths, methods) is declared once, in _routes.py. Each endpoint reads and
checks its request with _validation.py, and answers an error as ``{"error": "...", "code": "..."}``.
The processes are _processes.py's (with _supervisor.py for managed ones), the terminals
_pty_table.py's and _pty_session.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import json
import secrets
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, Protocol, TypeVar

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.websockets import WebSocket, WebSocketState

from .._terminal_protocol import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    OP_DATA,
    OP_READY,
    TOKEN_HEADER,
    exit_frame,
    exit_reason,
    resize_from_frame,
)
from ._output import Batch, StreamName
from ._processes import ManagedProcess, NameTaken, NotManaged, ProcessTable, StdinNotWritable
from ._pty_session import EXIT, KILLED, PRE_READY_LIMIT, PtyClient, PtySession
from ._pty_table import MAX_SESSIONS, PtyTable
from ._security import expects_continue
from ._validation import (
    SPAWN_FAILED,
    PtySpec,
    RunSpec,
    StartError,
    StartSpec,
    TooLarge,
    declared_length,
    parse_last_event_id,
    parse_resize,
    parse_signal,
    read_json,
    spawn_error,
)
from ._validation import Body as _Body

__all__ = [
    "RUN_PING_SECONDS",
    "close_stdin",
    "follow",
    "follow_events",
    "health",
    "info",
    "output",
    "process",
    "processes",
    "pty_resize",
    "pty_session",
    "pty_sessions",
    "pty_websocket",
    "restart",
    "run",
    "signal",
    "stdin",
]

# Bytes written to a pipe at a time when a buffered (chunked) body is written.
_WRITE_SLICE = 64 * 1024
# Seconds an SSE stream may go on once the server stops: `end_streams` has killed the processes,
# so a stream ends by itself with its last events, rather than being cut off.
_STREAM_GRACE = 1.0
# A run stream's keep-alive comment: also how soon a client that closed its connection after
# sending the request is noticed (a half-closed one is served: see GuardedH11Protocol).
RUN_PING_SECONDS = 1
# Bytes of JSON (or SSE) gathered before handing a piece of a long answer to the server.
_CHUNK_BYTES = 64 * 1024
_DATA = bytes([OP_DATA])
# The close reason for a client that let too much output pile up before its READY.
_OVERFLOW = f"output before READY exceeded {PRE_READY_LIMIT // (1024 * 1024)} MiB"


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "code": code}, status_code=status, headers=headers)


def _closing(response: Response, complete: bool) -> Response:
    """``response``, closing the connection after it unless the request body was read to its end."""
    if not complete:
        response.headers["connection"] = "close"
    return response


def _too_large(message: str, complete: bool) -> JSONResponse:
    # A body that was not read to its end cannot be skipped: close the connection after answering.
    return _error(413, "PAYLOAD_TOO_LARGE", message, None if complete else {"connection": "close"})


def _not_found(pid: int | str) -> JSONResponse:
    return _error(404, "NOT_FOUND", f"Process {pid} not found")


def _refused(exc: Exception) -> JSONResponse:
    """The answer to a request refused by validation (400, 413) or a failed start (400 SPAWN_FAILED)."""
    if isinstance(exc, TooLarge):
        return _too_large(str(exc), exc.complete)
    if isinstance(exc, StartError):
        return _error(400, SPAWN_FAILED, str(exc))
    if isinstance(exc, NameTaken):
        return _error(409, "NAME_TAKEN", str(exc))
    return _error(400, "BAD_REQUEST", str(exc))


def _not_writable(pid: int | str) -> JSONResponse:
    return _error(
        400,
        "STDIN_NOT_WRITABLE",
        f"stdin of process {pid} is not writable: it was not started with stdin_mode 'pipe', "
        "it was closed, or the process has exited",
    )


def _pid(request: Request) -> int | str:
    pid: int | str = request.path_params["pid"]
    return pid


def _table(request: Request) -> ProcessTable:
    table: ProcessTable = request.app.state.table
    return table


def _lookup(request: Request) -> tuple[int | str, ManagedProcess | None]:
    pid = _pid(request)
    return pid, _table(request).get(pid)


# -- DELETE kills, GET describes: ``/processes/{pid}`` and ``/pty/{session_id}`` ----------------


class _Described(Protocol):
    def info(self) -> dict[str, Any]: ...


_Item = TypeVar("_Item", bound=_Described)
_Key = TypeVar("_Key")


async def kill_or_describe(
    request: Request,
    key: _Key,
    item: _Item | None,
    not_found: Callable[[_Key], Response],
    kill: Callable[[_Item], object],
) -> Response:
    """404 via ``not_found(key)`` when ``item`` is missing; DELETE: ``kill(item)`` (awaited if it
    returns an awaitable), then 204; otherwise ``item.info()`` as JSON."""
    if item is None:
        return not_found(key)
    if request.method == "DELETE":
        result = kill(item)
        if inspect.isawaitable(result):
            await result
        return Response(status_code=204)
    return JSONResponse(item.info())


# -- processes ----------------------------------------------------------------------------------


async def processes(request: Request) -> Response:
    table = _table(request)
    if request.method == "POST":
        try:
            spec = StartSpec.parse(await read_json(request))
            proc = await table.start(spec)
        except (TooLarge, ValueError, StartError, NameTaken) as exc:
            return _refused(exc)
        return JSONResponse(proc.info(), status_code=201)
    return JSONResponse({"processes": [p.info() for p in table]})


async def process(request: Request) -> Response:
    pid, proc = _lookup(request)
    return await kill_or_describe(request, pid, proc, _not_found, _table(request).kill)


async def restart(request: Request) -> Response:
    pid, proc = _lookup(request)
    if proc is None:
        return _not_found(pid)
    try:
        new = await _table(request).restart(proc)
    except NotManaged as exc:
        return _error(400, "NOT_MANAGED", str(exc))
    except (StartError, NameTaken) as exc:
        return _refused(exc)
    return JSONResponse(new.info())


async def signal(request: Request) -> Response:
    pid, proc = _lookup(request)
    try:
        body = await read_json(request)
    except TooLarge as exc:
        return _refused(exc)
    except ValueError as exc:
        return _error(400, "BAD_REQUEST", str(exc)) if proc is not None else _not_found(pid)
    if proc is None:
        return _not_found(pid)
    try:
        sig = parse_signal(body)
    except ValueError as exc:
        return _refused(exc)
    try:
        proc.send_signal(sig)
    except ValueError as exc:
        return _error(400, "BAD_REQUEST", str(exc))
    return JSONResponse({"success": True})


async def stdin(request: Request) -> Response:
    pid, proc = _lookup(request)
    # A client waiting for "100 Continue" is refused without reading (no 100 is sent).
    body = _Body(request.receive, expects_continue(request.scope))
    close = {"connection": "close"}
    if proc is None:
        return _closing(_not_found(pid), await body.discard())
    limit: int = request.app.state.max_body_bytes
    try:
        declared = declared_length(request.headers)
    except ValueError as exc:
        return _error(400, "BAD_REQUEST", str(exc), close)
    refusal = f"the body is larger than {limit} bytes; nothing was written"
    if declared is not None and declared > limit:
        return _too_large(refusal, await body.discard())
    too_large = not_writable = False
    try:
        async with proc.stdin_lock:
            if not proc.stdin_writable:
                not_writable = True
            elif declared is not None:
                # Declared and within the limit: stream it through, chunk by chunk, with backpressure.
                while (chunk := await body.next_chunk()) is not None:
                    await proc.write_stdin(chunk)
            else:
                # Chunked: buffer up to the limit, so that an oversized body writes nothing.
                data = await body.read_at_most(limit)
                if data is None:
                    too_large = True
                else:
                    view = memoryview(data)
                    for i in range(0, len(view), _WRITE_SLICE):
                        await proc.write_stdin(view[i : i + _WRITE_SLICE].tobytes())
    except StdinNotWritable:
        not_writable = True
    except ClientDisconnect:
        return Response(status_code=400)
    if too_large:
        return _too_large(refusal, await body.discard())
    if not_writable:
        return _closing(_not_writable(pid), await body.discard())
    return Response(status_code=204)


async def close_stdin(request: Request) -> Response:
    pid, proc = _lookup(request)
    if proc is None:
        return _not_found(pid)
    try:
        async with proc.stdin_lock:
            await proc.close_stdin()
    except StdinNotWritable:
        return _error(400, "STDIN_NOT_WRITABLE", f"process {pid} was not started with stdin_mode 'pipe'")
    return Response(status_code=204)


def _json_strings(lines: list[str]) -> Iterator[bytes]:
    """``lines`` as the inside of a JSON array, in pieces of at most about _CHUNK_BYTES."""
    small: list[str] = []
    sep = b""
    for line in lines:
        if len(line) <= _CHUNK_BYTES:
            small.append(line)
            continue
        if small:
            yield sep + json.dumps(small, ensure_ascii=False, separators=(",", ":"))[1:-1].encode()
            small, sep = [], b","
        # A long line is escaped a slice at a time (JSON escapes character by character).
        yield sep + b'"'
        sep = b","
        for i in range(0, len(line), _CHUNK_BYTES):
            yield json.dumps(line[i : i + _CHUNK_BYTES], ensure_ascii=False)[1:-1].encode()
        yield b'"'
    if small:
        yield sep + json.dumps(small, ensure_ascii=False, separators=(",", ":"))[1:-1].encode()


async def _json_lines(pid: int, proc: ManagedProcess, stream: StreamName) -> AsyncIterator[bytes]:
    """An OutputResponse, streamed a piece at a time: never the whole text in memory, never a long
    stretch without letting other requests run. The lines are those captured when it began."""
    pending = [b'{"pid":%d,"lines":[' % pid]
    size, count = 0, 0
    for batch in proc.log.batches(proc.log.first, proc.log.end):
        if stream != "output" and batch.stream != stream:
            continue
        if count:
            pending.append(b",")
        for piece in _json_strings(batch.lines):
            pending.append(piece)
            size += len(piece)
            if size >= _CHUNK_BYTES:
                yield b"".join(pending)
                pending, size = [], 0
                await asyncio.sleep(0)
        count += len(batch.lines)
    pending.append(b'],"line_count":%d}' % count)
    yield b"".join(pending)


def output(stream: StreamName) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        pid, proc = _lookup(request)
        if proc is None:
            return _not_found(pid)
        return StreamingResponse(_json_lines(proc.pid, proc, stream), media_type="application/json")

    return endpoint


def _sse_output(batch: Batch, position: int, tagged: bool) -> bytes:
    """One ``output`` event per line of the batch, as SSE text, with ids from ``position`` on."""
    events = []
    dumps = _compact.encode
    last = len(batch.lines) - 1
    for n, line in enumerate(batch.lines):
        data: dict[str, Any] = {"line": line, "timestamp": batch.timestamp}
        if tagged:
            data["stream"] = batch.stream
        if batch.continued and n == last:
            data["continued"] = True
        events.append(b"event: output\nid: %d\ndata: %s\n\n" % (position + n, dumps(data).encode()))
    return b"".join(events)


_compact = json.JSONEncoder(separators=(",", ":"))


def _sse_gap(expected: int, position: int) -> bytes:
    """The ``gap`` event: lines ``expected`` up to ``position`` (excluded) were dropped before being read."""
    data = {"missing": position - expected, "from": expected, "to": position}
    return b"event: gap\ndata: " + json.dumps(data).encode() + b"\n\n"


def follow_events(proc: ManagedProcess, stream: StreamName, position: int = 0) -> AsyncIterator[bytes]:
    """``output`` events for captured then live lines of ``stream`` from ``position``, in SSE text.

    Each event's ``id`` is the line's position in ``stream`` (in the combined output for
    ``output``); lines dropped before this follower could read them are announced by a
    ``gap`` event where they were. The follower is attached at once (before the first
    iteration), so nothing it has not read is dropped from then on.
    """
    return _follow_events(proc, stream, position, proc.attach(stream, position))


async def _follow_events(
    proc: ManagedProcess, stream: StreamName, position: int, cursor: Any
) -> AsyncIterator[bytes]:
    tagged = stream == "output"
    expected = position
    async for batch in proc.follow(stream, cursor):
        at = batch.index if tagged else batch.position
        if at > expected:
            yield _sse_gap(expected, at)
        yield _sse_output(batch, at, tagged)
        expected = at + len(batch.lines)
        await asyncio.sleep(0)


def _stream_length(proc: ManagedProcess, stream: StreamName) -> int:
    if stream == "output":
        return proc.log.end
    return proc.log.out_end if stream == "stdout" else proc.log.end - proc.log.out_end


def _resume_position(request: Request, proc: ManagedProcess, stream: StreamName) -> int:
    """Where a follow starts: after the ``Last-Event-ID`` the client saw, else at the first line."""
    return parse_last_event_id(
        request.headers.get("last-event-id"),
        _stream_length(proc, stream),
        f"the {stream} of process {proc.pid}",
    )


def follow(stream: StreamName) -> Callable[[Request], Awaitable[Response]]:
    async def events(proc: ManagedProcess, position: int) -> AsyncIterator[bytes]:
        # Attached when the response starts (a follower that never starts holds nothing back).
        async for chunk in follow_events(proc, stream, position):
            yield chunk
        yield b"event: eof\ndata: {}\n\n"

    async def endpoint(request: Request) -> Response:
        pid, proc = _lookup(request)
        if proc is None:
            return _not_found(pid)
        if request.method == "HEAD":
            return Response(media_type="text/event-stream")
        try:
            position = _resume_position(request, proc, stream)
        except ValueError as exc:
            return _error(400, "BAD_REQUEST", str(exc))
        return EventSourceResponse(
            events(proc, position),
            ping=15,
            ping_message_factory=_Ping,
            sep="\n",
            shutdown_grace_period=_STREAM_GRACE,
        )

    return endpoint


class _Ping(ServerSentEvent):
    """The keep-alive: one comment line and no blank line after it.

    A blank line ends an event, and a parser that remembers the last ``id:`` (httpx-sse does)
    dispatches an empty event for a comment followed by one; a bare comment line is ignored
    by every parser, so a client sees only the real events.
    """

    def encode(self) -> bytes:
        return b": ping\n"


# -- run, health, info -------------------------------------------------------------------------


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return (
        b"event: " + event.encode() + b"\ndata: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"
    )


def _exit_event(proc: ManagedProcess) -> dict[str, Any]:
    if proc.timed_out:
        reason = "timed_out"
    elif proc.signal is not None:
        reason = "signaled"
    else:
        reason = "exited"
    return {"exit_code": proc.exit_code, "signal": proc.signal, "oom_killed": False, "reason": reason}


async def _run_events(
    proc: ManagedProcess, timeout: float | None, output: AsyncIterator[bytes]
) -> AsyncIterator[bytes]:
    # The docs name no SSE events for run (their one example frame is a bare `data:`); like the
    # follow endpoints, these are named: `start`, then `output`s, then `exit`. Clients that
    # read only `data:` (the official SDK tells the frames apart by their fields) are unaffected.
    timer = None
    if timeout is not None:

        def expire() -> None:
            if not proc.finished:
                proc.timed_out = True
                proc.kill()  # the whole process group: the tree it started

        timer = asyncio.get_running_loop().call_later(timeout, expire)
    try:
        yield _sse("start", {"handle": proc.handle, "pid": proc.pid, "started_at": proc.started_at})
        async for chunk in output:
            yield chunk
        yield _sse("exit", _exit_event(proc))
    finally:
        if timer is not None:
            timer.cancel()
        if not proc.finished:
            proc.kill()  # the client went away: a run's process does not outlive its request


async def run(request: Request) -> Response:
    try:
        spec = RunSpec.parse(await read_json(request))
        proc = await _table(request).start(spec.start)
    except (TooLarge, ValueError, StartError) as exc:
        return _refused(exc)
    # The run's stream follows the output from the moment the process starts: none of it is
    # dropped before the client read it (the process waits instead, see _processes.py).
    output = follow_events(proc, "output")
    return EventSourceResponse(
        _run_events(proc, spec.timeout, output),
        ping=RUN_PING_SECONDS,
        ping_message_factory=_Ping,
        sep="\n",
        shutdown_grace_period=_STREAM_GRACE,
    )


async def health(request: Request) -> Response:
    return JSONResponse({"healthy": True})


async def info(request: Request) -> Response:
    table = _table(request)
    return JSONResponse(
        {
            "version": request.app.state.version,
            "uptime_secs": round(time.monotonic() - request.app.state.started, 3),
            "running_processes": table.running,
            "total_processes": table.total_started,
        }
    )


# -- PTY sessions and their websocket ----------------------------------------------------------


def _refusal(status: int, code: str, message: str) -> JSONResponse:
    """A refused websocket upgrade. It ends its connection: the client sent no body to frame and
    may not read to the end, so a pooled client must not send its next request on it."""
    response = _error(status, code, message)
    response.headers["connection"] = "close"
    return response


def _pty_table(request: Request | WebSocket) -> PtyTable:
    table: PtyTable = request.app.state.pty_table
    return table


async def pty_sessions(request: Request) -> Response:
    table = _pty_table(request)
    if request.method == "GET":
        return JSONResponse({"sessions": [s.info() for s in table]})
    try:
        spec = PtySpec.parse(await read_json(request))
    except (TooLarge, ValueError) as exc:
        return _refused(exc)
    if len(table) >= MAX_SESSIONS:
        return _error(429, "TOO_MANY_SESSIONS", f"at most {MAX_SESSIONS} PTY sessions; kill one first")
    try:
        session = await table.create(
            spec.command, spec.args, spec.env, spec.working_dir, spec.rows, spec.cols
        )
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        # The same answer as a process start that cannot run (the daemon says 500; see README).
        return _refused(spawn_error(spec.command, exc))
    return JSONResponse({"session_id": session.session_id, "token": session.token}, status_code=201)


def _pty_lookup(request: Request) -> tuple[str, PtySession | None]:
    session_id: str = request.path_params["session_id"]
    return session_id, _pty_table(request).get(session_id)


def _pty_not_found(session_id: str) -> JSONResponse:
    return _error(404, "NOT_FOUND", f"PTY session {session_id} not found")


async def pty_session(request: Request) -> Response:
    session_id, session = _pty_lookup(request)
    return await kill_or_describe(request, session_id, session, _pty_not_found, _pty_table(request).kill)


async def pty_resize(request: Request) -> Response:
    session_id, session = _pty_lookup(request)
    try:
        rows, cols = parse_resize(await read_json(request))
    except TooLarge as exc:
        return _refused(exc)
    except ValueError as exc:
        return _error(400, "BAD_REQUEST", str(exc)) if session is not None else _pty_not_found(session_id)
    if session is None:
        return _pty_not_found(session_id)
    session.resize(rows, cols)
    return Response(status_code=204)


async def _send_output(websocket: WebSocket, session: PtySession, client: PtyClient) -> None:
    while True:
        item = await client.queue.get()
        session.update_room()
        if item is EXIT:
            code = session.exit_frame_code
            await websocket.send_bytes(exit_frame(code))
            await websocket.close(CLOSE_NORMAL, exit_reason(code))
            return
        if item is KILLED:
            if client.overflow:
                await websocket.close(CLOSE_POLICY, _OVERFLOW)
            elif client.close_code == CLOSE_POLICY:
                await websocket.close(CLOSE_POLICY, "client too slow")
            else:
                await websocket.close(CLOSE_GOING_AWAY, "session terminated")
            return
        assert isinstance(item, bytes)
        await websocket.send_bytes(_DATA + item)


async def pty_websocket(websocket: WebSocket) -> None:
    """The terminal's binary websocket. It takes the session's token alone (``X-PTY-Token`` or
    ``?token=``), as the docs' examples connect; a bearer key that is sent must still be right
    (_security.py, which lets this route alone through without one: _routes.py)."""
    session_id: str = websocket.path_params["session_id"]
    session = _pty_table(websocket).get(session_id)
    given = websocket.headers.get(TOKEN_HEADER) or websocket.query_params.get("token") or ""
    expected = session.token if session is not None else secrets.token_hex(32)
    token_ok = hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())
    if session is None:
        await websocket.send_denial_response(
            _refusal(404, "SESSION_NOT_FOUND", f"PTY session {session_id} not found")
        )
        return
    if not token_ok:
        await websocket.send_denial_response(
            _refusal(
                403, "INVALID_TOKEN", f"missing or wrong PTY token: send it as the {TOKEN_HEADER} header"
            )
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
            elif (size := resize_from_frame(frame)) is not None:
                session.resize(*size)
            elif opcode == OP_READY and sender is None:
                if not session.ready(client):
                    await websocket.close(CLOSE_POLICY, _OVERFLOW)
                    break
                sender = asyncio.ensure_future(_send_output(websocket, session, client))
            elif opcode == OP_READY and client.overflow:
                break
            if client.overflow and sender is None:
                await websocket.close(CLOSE_POLICY, _OVERFLOW)
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
