"""The Starlette application: the process API of openapi.yaml plus the follow (SSE) endpoints.

Nothing else is served: no docs pages, no file API. Every error body is
``{"error": "...", "code": "..."}``.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive

from ._output import Batch
from ._processes import (
    ATTACH_GRACE,
    MAX_LINE,
    PROCESS_OUTPUT_BUDGET,
    RETAINED_FINISHED,
    TOTAL_OUTPUT_BUDGET,
    ManagedProcess,
    ProcessTable,
    RunSpec,
    StartError,
    StartSpec,
    StdinNotWritable,
    StreamName,
)
from ._pty import PtyTable, pty_routes
from ._resource import kill_or_describe
from ._security import DRAIN_LIMIT, SecurityMiddleware, expects_continue

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app"]

# The sandbox daemon's limit for one stdin request.
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024
# Bytes written to a pipe at a time when a buffered (chunked) body is written.
_WRITE_SLICE = 64 * 1024
# JSON bodies (start, signal) are small; anything larger is refused with 413.
MAX_JSON_BYTES = 1024 * 1024
# Bytes of JSON (or SSE) gathered before handing a piece of a long answer to the server.
_CHUNK_BYTES = 64 * 1024


class _PidConvertor(Convertor[int]):
    """A pid in a path: 1 to 10 digits (longer ones match no route: 404, never a 500)."""

    regex = "[0-9]{1,10}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("pid", _PidConvertor())


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "code": code}, status_code=status, headers=headers)


class _TooLarge(Exception):
    """The body is larger than allowed; `complete` tells whether it was read to its end."""

    def __init__(self, message: str, complete: bool) -> None:
        super().__init__(message)
        self.complete = complete


def _closing(response: Response, complete: bool) -> Response:
    """``response``, closing the connection after it unless the request body was read to its end."""
    if not complete:
        response.headers["connection"] = "close"
    return response


def _too_large(message: str, complete: bool) -> JSONResponse:
    # A body that was not read to its end cannot be skipped: close the connection after answering.
    return _error(413, "PAYLOAD_TOO_LARGE", message, None if complete else {"connection": "close"})


def _not_found(pid: int) -> JSONResponse:
    return _error(404, "NOT_FOUND", f"Process {pid} not found")


def _not_writable(pid: int) -> JSONResponse:
    return _error(
        400,
        "STDIN_NOT_WRITABLE",
        f"stdin of process {pid} is not writable: it was not started with stdin_mode 'pipe', "
        "it was closed, or the process has exited",
    )


class _Body:
    """A request body read chunk by chunk, which can be dropped part way (unlike `Request.stream`)."""

    def __init__(self, receive: Receive, waiting_for_continue: bool = False) -> None:
        self._receive = receive
        self.done = False
        self.started = False
        self.waiting_for_continue = waiting_for_continue

    async def next_chunk(self) -> bytes | None:
        while not self.done:
            self.started = True
            message = await self._receive()
            if message["type"] == "http.request":
                self.done = not message.get("more_body", False)
                chunk: bytes = message.get("body", b"")
                if chunk:
                    return chunk
            elif message["type"] == "http.disconnect":
                self.done = True
                raise ClientDisconnect
        return None

    async def discard(self, limit: int = DRAIN_LIMIT) -> bool:
        """Read the rest (up to ``limit`` bytes) and drop it; True when the body was read to its end.

        Reading it lets a client in the middle of an upload see the answer rather than a reset
        connection; past the limit the connection is closed instead.
        """
        if self.done:
            return True
        if self.waiting_for_continue and not self.started:
            return False  # reading would send "100 Continue": the client must not send it at all
        seen = 0
        try:
            while (chunk := await self.next_chunk()) is not None:
                seen += len(chunk)
                if seen > limit:
                    return False
        except ClientDisconnect:
            return False
        return True

    async def read_at_most(self, limit: int) -> bytes | None:
        """The whole body, or None when it is longer than ``limit`` (the rest is still unread)."""
        buf = bytearray()
        while (chunk := await self.next_chunk()) is not None:
            buf += chunk
            if len(buf) > limit:
                return None
        return bytes(buf)


async def _json_body(request: Request) -> Any:
    """The decoded JSON body; raises ValueError (400) or _TooLarge (413) with a message for the client."""
    message = f"the JSON body is larger than {MAX_JSON_BYTES} bytes"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_JSON_BYTES:
        # Refused before reading a byte (and before any 100 Continue).
        raise _TooLarge(message, False)
    body = _Body(request.receive, expects_continue(request.scope))
    raw = await body.read_at_most(MAX_JSON_BYTES)
    if raw is None:
        raise _TooLarge(message, await body.discard())
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("the request body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise ValueError("the request body is not valid JSON") from None


def _pid(request: Request) -> int:
    pid: int = request.path_params["pid"]
    return pid


def _table(request: Request) -> ProcessTable:
    table: ProcessTable = request.app.state.table
    return table


def _lookup(request: Request) -> tuple[int, ManagedProcess | None]:
    pid = _pid(request)
    return pid, _table(request).get(pid)


# -- handlers ---------------------------------------------------------------------------------


async def processes(request: Request) -> Response:
    table = _table(request)
    if request.method == "POST":
        try:
            spec = StartSpec.parse(await _json_body(request))
            proc = await table.start(spec)
        except _TooLarge as exc:
            return _too_large(str(exc), exc.complete)
        except (ValueError, StartError) as exc:
            return _error(400, "BAD_REQUEST", str(exc))
        return JSONResponse(proc.info(), status_code=201)
    return JSONResponse({"processes": [p.info() for p in table]})


async def process(request: Request) -> Response:
    pid, proc = _lookup(request)
    return await kill_or_describe(request, pid, proc, _not_found, lambda p: p.kill())


async def signal(request: Request) -> Response:
    pid, proc = _lookup(request)
    try:
        body = await _json_body(request)
    except _TooLarge as exc:
        return _too_large(str(exc), exc.complete)
    except ValueError as exc:
        return _error(400, "BAD_REQUEST", str(exc)) if proc is not None else _not_found(pid)
    if proc is None:
        return _not_found(pid)
    sig = body.get("signal") if isinstance(body, dict) else None
    if not isinstance(sig, int) or isinstance(sig, bool):
        return _error(400, "BAD_REQUEST", "signal is required and must be an integer, e.g. 15")
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
    header = request.headers.get("content-length")
    declared = int(header) if header is not None and header.isdigit() and len(header) < 19 else None
    if header is not None and declared is None:
        return _error(400, "BAD_REQUEST", "invalid Content-Length", close)
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


def _output(stream: StreamName) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        pid, proc = _lookup(request)
        if proc is None:
            return _not_found(pid)
        return StreamingResponse(_json_lines(pid, proc, stream), media_type="application/json")

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
    last = request.headers.get("last-event-id")
    if last is None or last == "":
        return 0
    if not last.isdigit() or len(last) > 18:
        raise ValueError("Last-Event-ID must be the id of an output event (a line position)")
    position = int(last) + 1
    if position > _stream_length(proc, stream):
        raise ValueError(f"Last-Event-ID {last} is past the last line of the {stream} of process {proc.pid}")
    return position


def _follow(stream: StreamName) -> Callable[[Request], Awaitable[Response]]:
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
        return EventSourceResponse(events(proc, position), ping=15, sep="\n")

    return endpoint


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
        spec = RunSpec.parse(await _json_body(request))
        proc = await _table(request).start(spec.start)
    except _TooLarge as exc:
        return _too_large(str(exc), exc.complete)
    except (ValueError, StartError) as exc:
        return _error(400, "BAD_REQUEST", str(exc))
    # The run's stream follows the output from the moment the process starts: none of it is
    # dropped before the client read it (the process waits instead, see _processes.py).
    output = follow_events(proc, "output")
    return EventSourceResponse(_run_events(proc, spec.timeout, output), ping=15, sep="\n")


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


def _version() -> str:
    try:
        return importlib.metadata.version("tensorlake-sandbox-client")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


# -- errors and the application ---------------------------------------------------------------


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "BAD_REQUEST")
    message = {404: f"no such endpoint: {request.url.path}", 405: f"method {request.method} not allowed"}
    return _error(
        exc.status_code, code, message.get(exc.status_code, str(exc.detail)), dict(exc.headers or {})
    )


async def _server_error(request: Request, exc: Exception) -> Response:
    return _error(500, "INTERNAL", "internal error in the local sandbox")


def create_app(
    *,
    token: str,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    allowed_hosts: frozenset[str] | None = frozenset(),
    retained_finished: int = RETAINED_FINISHED,
    total_output_budget: int = TOTAL_OUTPUT_BUDGET,
    process_output_budget: int = PROCESS_OUTPUT_BUDGET,
    max_line: int = MAX_LINE,
    attach_grace: float = ATTACH_GRACE,
) -> Starlette:
    """The local sandbox's ASGI app. Its processes are killed when the app shuts down (lifespan).

    ``retained_finished``, ``total_output_budget`` and ``process_output_budget`` bound what
    processes may keep; ``max_line`` is the longest line stored whole; ``attach_grace`` how long
    a new process's output is held back for its first follower (see _processes.py).
    """
    if max_body_bytes < 1:
        raise ValueError("max_body_bytes must be positive")
    table = ProcessTable(
        retained_finished=retained_finished,
        total_output_budget=total_output_budget,
        process_output_budget=process_output_budget,
        max_line=max_line,
        attach_grace=attach_grace,
    )
    pty_table = PtyTable()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await table.shutdown()
            await pty_table.shutdown()

    base = "/api/v1/processes"
    pid = base + "/{pid:pid}"
    routes = [
        Route("/api/v1/health", health, methods=["GET"]),
        Route("/api/v1/info", info, methods=["GET"]),
        # Before the pid routes (which only match digits anyway).
        Route(base + "/run", run, methods=["POST"]),
        Route(base, processes, methods=["GET", "POST"]),
        Route(pid, process, methods=["GET", "DELETE"]),
        Route(pid + "/signal", signal, methods=["POST"]),
        Route(pid + "/stdin", stdin, methods=["POST"]),
        Route(pid + "/stdin/close", close_stdin, methods=["POST"]),
    ]
    for stream in ("stdout", "stderr", "output"):
        routes.append(Route(f"{pid}/{stream}", _output(stream), methods=["GET"]))
        routes.append(Route(f"{pid}/{stream}/follow", _follow(stream), methods=["GET"]))
    app = Starlette(
        routes=[*routes, *pty_routes()],
        middleware=[Middleware(SecurityMiddleware, token=token, allowed_hosts=allowed_hosts)],
        exception_handlers={HTTPException: _http_exception, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.table = table
    app.state.pty_table = pty_table
    app.state.version = _version()
    app.state.started = time.monotonic()
    app.state.max_body_bytes = max_body_bytes
    return app
