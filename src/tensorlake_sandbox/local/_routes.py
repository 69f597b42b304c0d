"""Every route of the local sandbox, declared once: path, methods and endpoint (_endpoints.py).

The app serves `ROUTES`; the security middleware (_security.py) asks `takes_session_token`
which requests prove themselves with a PTY session's token rather than the bearer key.
"""

from __future__ import annotations

import re

from starlette.convertors import Convertor, register_url_convertor
from starlette.routing import BaseRoute, Match, Route, WebSocketRoute
from starlette.types import Scope

from . import _endpoints as endpoints
from ._validation import RUN_SEGMENT

__all__ = ["ROUTES", "SESSION_TOKEN_ROUTES", "takes_session_token"]


class _PidConvertor(Convertor[int | str]):
    """A pid, or a managed process's name, in a path: any segment but ``run`` (POST /processes/run).

    All digits is a pid (an int; too many digits for one names nothing: 404, never a 500),
    anything else a name (percent-decoded by the server).
    """

    regex = f"(?!{re.escape(RUN_SEGMENT)}(?:/|$))[^/]+"

    def convert(self, value: str) -> int | str:
        return int(value) if value.isdigit() and len(value) <= 10 else value

    def to_string(self, value: int | str) -> str:
        return str(value)


register_url_convertor("pid", _PidConvertor())

_PROCESSES = "/api/v1/processes"
_PID = _PROCESSES + "/{pid:pid}"
_PTY = "/api/v1/pty"
_SESSION = _PTY + "/{session_id}"

# The routes whose caller proves itself with the session's token (``X-PTY-Token`` or
# ``?token=``, checked by the endpoint) and may come without the bearer key, as Tensorlake's
# docs connect to a terminal.
SESSION_TOKEN_ROUTES: tuple[BaseRoute, ...] = (WebSocketRoute(_SESSION + "/ws", endpoints.pty_websocket),)

ROUTES: tuple[BaseRoute, ...] = (
    Route("/api/v1/health", endpoints.health, methods=["GET"]),
    Route("/api/v1/info", endpoints.info, methods=["GET"]),
    # Before the pid routes (whose convertor excludes it anyway).
    Route(f"{_PROCESSES}/{RUN_SEGMENT}", endpoints.run, methods=["POST"]),
    Route(_PROCESSES, endpoints.processes, methods=["GET", "POST"]),
    Route(_PID, endpoints.process, methods=["GET", "DELETE"]),
    Route(_PID + "/signal", endpoints.signal, methods=["POST"]),
    Route(_PID + "/restart", endpoints.restart, methods=["POST"]),
    Route(_PID + "/stdin", endpoints.stdin, methods=["POST"]),
    Route(_PID + "/stdin/close", endpoints.close_stdin, methods=["POST"]),
    *(
        route
        for stream in ("stdout", "stderr", "output")
        for route in (
            Route(f"{_PID}/{stream}", endpoints.output(stream), methods=["GET"]),
            Route(f"{_PID}/{stream}/follow", endpoints.follow(stream), methods=["GET"]),
        )
    ),
    Route(_PTY, endpoints.pty_sessions, methods=["GET", "POST"]),
    Route(_SESSION, endpoints.pty_session, methods=["GET", "DELETE"]),
    Route(_SESSION + "/resize", endpoints.pty_resize, methods=["POST"]),
    *SESSION_TOKEN_ROUTES,
)


def takes_session_token(scope: Scope) -> bool:
    """True for a request to one of `SESSION_TOKEN_ROUTES`."""
    return any(route.matches(scope)[0] is Match.FULL for route in SESSION_TOKEN_ROUTES)
