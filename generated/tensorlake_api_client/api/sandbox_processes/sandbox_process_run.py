from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.run_process_request import RunProcessRequest
from ...types import UNSET, Unset


def _get_kwargs(
    *,
    body: RunProcessRequest,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/processes/run",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _check_status(response: httpx.Response) -> None:
    if not 200 <= response.status_code <= 299:
        raise errors.UnexpectedStatus(response.status_code, response.content)


@contextmanager
def stream(
    *,
    client: AuthenticatedClient | Client,
    body: RunProcessRequest,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> Iterator[httpx.Response]:
    """Run a process

     Start a non-interactive process, stream its captured output over Server-Sent Events, and emit a
    final exit event. Stdin is closed for this endpoint (to write to stdin, start a process with
    `stdin_mode: pipe` instead). Events, in order: one `start` event (`RunStartEvent`), `output` events
    (`OutputEvent`, with `stream`), and one `exit` event (`RunExitEvent`). When `timeout` expires, the
    whole process tree is killed and the exit event says `reason: timed_out`. Clients should read each
    event's data by its fields, not only by its event name.

    Args:
        body (RunProcessRequest):

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
        body=body,
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
    *,
    client: AuthenticatedClient | Client,
    body: RunProcessRequest,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> AsyncIterator[httpx.Response]:
    """Run a process

     Start a non-interactive process, stream its captured output over Server-Sent Events, and emit a
    final exit event. Stdin is closed for this endpoint (to write to stdin, start a process with
    `stdin_mode: pipe` instead). Events, in order: one `start` event (`RunStartEvent`), `output` events
    (`OutputEvent`, with `stream`), and one `exit` event (`RunExitEvent`). When `timeout` expires, the
    whole process tree is killed and the exit event says `reason: timed_out`. Clients should read each
    event's data by its fields, not only by its event name.

    Args:
        body (RunProcessRequest):

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
        body=body,
    )
    if not isinstance(timeout, Unset):
        kwargs["timeout"] = timeout
    kwargs.setdefault("headers", {})["Accept"] = "text/event-stream"

    async with client.get_async_httpx_client().stream(**kwargs) as response:
        if not 200 <= response.status_code <= 299:
            await response.aread()
        _check_status(response)
        yield response
