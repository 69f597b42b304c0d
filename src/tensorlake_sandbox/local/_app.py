"""The Starlette application of a local sandbox: its routes (_routes.py), security, error bodies
and the lifespan that kills what it started.

Nothing else is served: no docs pages, no file API. Every error body is
``{"error": "...", "code": "..."}``.
"""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ._processes import (
    ATTACH_GRACE,
    MAX_LINE,
    PROCESS_OUTPUT_BUDGET,
    RETAINED_FINISHED,
    TOTAL_OUTPUT_BUDGET,
    ProcessTable,
)
from ._pty_session import KILL_GRACE
from ._pty_table import EXITED_TTL, PtyTable
from ._routes import ROUTES, takes_session_token
from ._security import SecurityMiddleware
from ._supervisor import STOP_GRACE

__all__ = ["DEFAULT_MAX_BODY_BYTES", "create_app", "end_streams"]

# The sandbox daemon's limit for one stdin request.
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "code": code}, status_code=status, headers=headers)


async def end_streams(app: Starlette) -> None:
    """Kill what ``app`` started, first thing when the server stops: its run and follow streams
    then end with their exit events, so the server need not wait out its grace period for them
    (the lifespan still reaps everything after)."""
    await app.state.table.kill_all()


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

    app = Starlette(
        routes=list(ROUTES),
        middleware=[
            Middleware(
                SecurityMiddleware,
                token=token,
                allowed_hosts=allowed_hosts,
                session_token=takes_session_token,
            )
        ],
        exception_handlers={HTTPException: _http_exception, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.table = table
    app.state.pty_table = pty_table
    app.state.version = _version()
    app.state.started = time.monotonic()
    app.state.max_body_bytes = max_body_bytes
    return app
