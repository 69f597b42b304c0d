"""The Starlette application: the process API of openapi.yaml plus the follow (SSE) endpoints.

Nothing else is served: no docs pages, no file API. Every error body is
``{"error": "...", "code": "..."}``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive

from ._processes import ManagedProcess, ProcessTable, StartError, StartSpec, StdinNotWritable, StreamName
from ._security import SecurityMiddleware

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app"]

# The sandbox daemon's limit for one stdin request.
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024
# Bytes written to a pipe at a time when a buffered (chunked) body is written.
_WRITE_SLICE = 64 * 1024
# JSON bodies (start, signal) are small; anything larger is refused.
_MAX_JSON_BYTES = 1024 * 1024


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "code": code}, status_code=status, headers=headers)


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

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.done = False

    async def next_chunk(self) -> bytes | None:
        while not self.done:
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

    async def discard(self) -> None:
        """Read the rest and drop it, so the client gets the answer rather than a reset connection."""
        try:
            while await self.next_chunk() is not None:
                pass
        except ClientDisconnect:
            pass

    async def read_at_most(self, limit: int) -> bytes | None:
        """The whole body, or None when it is longer than ``limit`` (the rest is still unread)."""
        buf = bytearray()
        while (chunk := await self.next_chunk()) is not None:
            buf += chunk
            if len(buf) > limit:
                return None
        return bytes(buf)


async def _json_body(request: Request) -> Any:
    """The decoded JSON body; raises ValueError with a message for the client."""
    body = _Body(request.receive)
    raw = await body.read_at_most(_MAX_JSON_BYTES)
    if raw is None:
        await body.discard()
        raise ValueError("the request body is too large")
    try:
        return json.loads(raw)
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
        except (ValueError, StartError) as exc:
            return _error(400, "BAD_REQUEST", str(exc))
        return JSONResponse(proc.info(), status_code=201)
    return JSONResponse({"processes": [p.info() for p in table]})


async def process(request: Request) -> Response:
    pid, proc = _lookup(request)
    if proc is None:
        return _not_found(pid)
    if request.method == "DELETE":
        proc.kill()
        return Response(status_code=204)
    return JSONResponse(proc.info())


async def signal(request: Request) -> Response:
    pid, proc = _lookup(request)
    try:
        body = await _json_body(request)
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
    body = _Body(request.receive)
    if proc is None:
        await body.discard()
        return _not_found(pid)
    limit: int = request.app.state.max_body_bytes
    header = request.headers.get("content-length")
    declared = int(header) if header is not None and header.isdigit() else None
    if header is not None and declared is None:
        await body.discard()
        return _error(400, "BAD_REQUEST", "invalid Content-Length")
    if declared is not None and declared > limit:
        await body.discard()
        return _error(413, "PAYLOAD_TOO_LARGE", f"the body is larger than {limit} bytes; nothing was written")
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
        await body.discard()
        return _error(413, "PAYLOAD_TOO_LARGE", f"the body is larger than {limit} bytes; nothing was written")
    if not_writable:
        await body.discard()
        return _not_writable(pid)
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


def _output(stream: StreamName) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        pid, proc = _lookup(request)
        if proc is None:
            return _not_found(pid)
        lines = [entry.line for entry in proc.lines[stream].entries]
        return JSONResponse({"pid": pid, "lines": lines, "line_count": len(lines)})

    return endpoint


def _follow(stream: StreamName) -> Callable[[Request], Awaitable[Response]]:
    async def events(proc: ManagedProcess) -> AsyncIterator[ServerSentEvent]:
        async for entry in proc.follow(stream):
            data: dict[str, Any] = {"line": entry.line, "timestamp": entry.timestamp}
            if stream == "output":
                data["stream"] = entry.stream
            yield ServerSentEvent(data=json.dumps(data, separators=(",", ":")), event="output")
        yield ServerSentEvent(data="{}", event="eof")

    async def endpoint(request: Request) -> Response:
        pid, proc = _lookup(request)
        if proc is None:
            return _not_found(pid)
        if request.method == "HEAD":
            return Response(media_type="text/event-stream")
        return EventSourceResponse(events(proc), ping=15, sep="\n")

    return endpoint


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
) -> Starlette:
    """The local sandbox's ASGI app. Its processes are killed when the app shuts down (lifespan)."""
    if max_body_bytes < 1:
        raise ValueError("max_body_bytes must be positive")
    table = ProcessTable()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await table.shutdown()

    base = "/api/v1/processes"
    pid = base + "/{pid:int}"
    routes = [
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
        routes=routes,
        middleware=[Middleware(SecurityMiddleware, token=token, allowed_hosts=allowed_hosts)],
        exception_handlers={HTTPException: _http_exception, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.table = table
    app.state.max_body_bytes = max_body_bytes
    return app
