"""The one shape shared by ``/processes/{pid}`` and ``/pty/{session_id}``: DELETE kills, GET describes.

Both endpoints look the item up first; a missing item is the caller's own 404 body.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response


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
