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

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ._output import Batch
from ._processes import (
    ATTACH_GRACE,
    MAX_LINE,
    PROCESS_OUTPUT_BUDGET,
    RETAINED_FINISHED,
    TOTAL_OUTPUT_BUDGET,
    ManagedProcess,
    NameTaken,
    NotManaged,
    ProcessTable,
    StdinNotWritable,
    StreamName,
)
from ._pty import EXITED_TTL, KILL_GRACE, PtyTable, pty_routes
from ._resource import kill_or_describe
from ._security import SecurityMiddleware, expects_continue
from ._supervisor import STOP_GRACE
from ._validation import (
    SPAWN_FAILED,
    RunSpec,
    StartError,
    StartSpec,
    TooLarge,
    parse_signal,
    read_json,
)
from ._validation import Body as _Body

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app", "end_streams"]

# The sandbox daemon's limit for one stdin request.
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024
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


class _PidConvertor(Convertor[int | str]):
    """A pid, or a managed process's name, in a path: any segment but ``run`` (POST /processes/run).

    All digits is a pid (an int; too many digits for one names nothing: 404, never a 500),
    anything else a name (percent-decoded by the server).
    """

    regex = "(?!run(?:/|$))[^/]+"

    def convert(self, value: str) -> int | str:
        return int(value) if value.isdigit() and len(value) <= 10 else value

    def to_string(self, value: int | str) -> str:
        return str(value)


register_url_convertor("pid", _PidConvertor())


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


# -- handlers ---------------------------------------------------------------------------------


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


async def end_streams(app: Starlette) -> None:
    """Kill what ``app`` started, first thing when the server stops: its run and follow streams
    then end with their exit events, so the server need not wait out its grace period for them
    (the lifespan still reaps everything after)."""
    await app.state.table.kill_all()


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
    stop_grace: float = STOP_GRACE,
    pty_kill_grace: float = KILL_GRACE,
    pty_exited_ttl: float = EXITED_TTL,
    process_output_budget: int = PROCESS_OUTPUT_BUDGET,
    max_line: int = MAX_LINE,
    attach_grace: float = ATTACH_GRACE,
) -> Starlette:
    """The local sandbox's ASGI app. Its processes are killed when the app shuts down (lifespan).

    ``retained_finished``, ``total_output_budget`` and ``process_output_budget`` bound what
    processes may keep; ``max_line`` is the longest line stored whole; ``attach_grace`` how long
    a new process's output is held back for its first follower (see _processes.py). The grace
    periods default to the daemon's (tests shorten them): ``stop_grace`` between SIGTERM and
    SIGKILL when a managed process is stopped or restarted, ``pty_kill_grace`` a killed terminal
    stays visible (dead) before SIGKILL and removal, ``pty_exited_ttl`` a terminal whose process
    exited by itself stays visible.
    """
    if max_body_bytes < 1:
        raise ValueError("max_body_bytes must be positive")
    table = ProcessTable(
        retained_finished=retained_finished,
        total_output_budget=total_output_budget,
        process_output_budget=process_output_budget,
        max_line=max_line,
        attach_grace=attach_grace,
        stop_grace=stop_grace,
    )
    pty_table = PtyTable(kill_grace=pty_kill_grace, exited_ttl=pty_exited_ttl)

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
        Route(pid + "/restart", restart, methods=["POST"]),
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
