from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...types import UNSET, Unset


def _get_kwargs(
    pid: int | str,
) -> dict[str, Any]:

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/processes/{pid}/stdout/follow".format(
            pid=quote(str(pid), safe=""),
        ),
    }

    return _kwargs


def _check_status(response: httpx.Response) -> None:
    if not 200 <= response.status_code <= 299:
        raise errors.UnexpectedStatus(response.status_code, response.content)


@contextmanager
def stream(
    pid: int | str,
    *,
    client: AuthenticatedClient | Client,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> Iterator[httpx.Response]:
    """Follow stdout

     Replay the captured stdout lines, then follow live ones over Server-Sent Events until the process's
    output ends. Each line is an `output` event whose data is an `OutputEvent` (no `stream` field); the
    stream ends with an `eof` event (data `{}`). Replayed lines may carry `timestamp: 0`.

    Args:
        pid (int | str):

    Raises:
        tensorlake_sandbox.SandboxError: With a tensorlake_sandbox.SandboxClient, for any status other
            than the documented success (the subclass for the status, e.g. AuthenticationError), and as
            SandboxConnectionError / SandboxTimeoutError when no answer arrives.
        errors.UnexpectedStatus: With any other client, for any status other than the documented success.
        httpx.TimeoutException: With any other client, if no answer arrives within the timeout (this
            call's, else Client.timeout).

    Returns:
        httpx.Response (a text/event-stream, unread)
    """

    kwargs = _get_kwargs(
        pid=pid,
    )
    if not isinstance(timeout, Unset):
        kwargs["timeout"] = timeout
    kwargs.setdefault("headers", {})["Accept"] = "text/event-stream"

    with client.get_httpx_client().stream(**kwargs) as response:
        if not 200 <= response.status_code <= 299:
            response.read()
        _check_status(response)
        yield response


@asynccontextmanager
async def astream(
    pid: int | str,
    *,
    client: AuthenticatedClient | Client,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> AsyncIterator[httpx.Response]:
    """Follow stdout

     Replay the captured stdout lines, then follow live ones over Server-Sent Events until the process's
    output ends. Each line is an `output` event whose data is an `OutputEvent` (no `stream` field); the
    stream ends with an `eof` event (data `{}`). Replayed lines may carry `timestamp: 0`.

    Args:
        pid (int | str):

    Raises:
        tensorlake_sandbox.SandboxError: With a tensorlake_sandbox.SandboxClient, for any status other
            than the documented success (the subclass for the status, e.g. AuthenticationError), and as
            SandboxConnectionError / SandboxTimeoutError when no answer arrives.
        errors.UnexpectedStatus: With any other client, for any status other than the documented success.
        httpx.TimeoutException: With any other client, if no answer arrives within the timeout (this
            call's, else Client.timeout).

    Returns:
        httpx.Response (a text/event-stream, unread)
    """

    kwargs = _get_kwargs(
        pid=pid,
    )
    if not isinstance(timeout, Unset):
        kwargs["timeout"] = timeout
    kwargs.setdefault("headers", {})["Accept"] = "text/event-stream"

    async with client.get_async_httpx_client().stream(**kwargs) as response:
        if not 200 <= response.status_code <= 299:
            await response.aread()
        _check_status(response)
        yield response
