from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.process_info import ProcessInfo
from ...models.start_process_request import StartProcessRequest
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    body: StartProcessRequest,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/processes",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ProcessInfo:
    if response.status_code == 201:
        response_201 = ProcessInfo.from_dict(response.json())

        return response_201

    raise errors.UnexpectedStatus(response.status_code, response.content)


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ProcessInfo]:
    parsed = _parse_response(client=client, response=response)
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=parsed,
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: StartProcessRequest,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> Response[ProcessInfo]:
    """Start a process

     Start a new process through the sandbox proxy. Set `stdin_mode` to `pipe` to write to its stdin
    later.

    Args:
        body (StartProcessRequest):

    Raises:
        tensorlake_sandbox.SandboxError: With a tensorlake_sandbox.SandboxClient, for any status other
            than the documented success (the subclass for the status, e.g. AuthenticationError), and as
            SandboxConnectionError / SandboxTimeoutError when no answer arrives.
        errors.UnexpectedStatus: With any other client, for any status other than the documented success.
        httpx.TimeoutException: With any other client, if no answer arrives within the timeout (this
            call's, else Client.timeout).

    Returns:
        Response[ProcessInfo]
    """

    kwargs = _get_kwargs(
        body=body,
    )
    if not isinstance(timeout, Unset):
        kwargs["timeout"] = timeout

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient | Client,
    body: StartProcessRequest,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> ProcessInfo:
    """Start a process

     Start a new process through the sandbox proxy. Set `stdin_mode` to `pipe` to write to its stdin
    later.

    Args:
        body (StartProcessRequest):

    Raises:
        tensorlake_sandbox.SandboxError: With a tensorlake_sandbox.SandboxClient, for any status other
            than the documented success (the subclass for the status, e.g. AuthenticationError), and as
            SandboxConnectionError / SandboxTimeoutError when no answer arrives.
        errors.UnexpectedStatus: With any other client, for any status other than the documented success.
        httpx.TimeoutException: With any other client, if no answer arrives within the timeout (this
            call's, else Client.timeout).

    Returns:
        ProcessInfo
    """

    return sync_detailed(
        client=client,
        body=body,
        timeout=timeout,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: StartProcessRequest,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> Response[ProcessInfo]:
    """Start a process

     Start a new process through the sandbox proxy. Set `stdin_mode` to `pipe` to write to its stdin
    later.

    Args:
        body (StartProcessRequest):

    Raises:
        tensorlake_sandbox.SandboxError: With a tensorlake_sandbox.SandboxClient, for any status other
            than the documented success (the subclass for the status, e.g. AuthenticationError), and as
            SandboxConnectionError / SandboxTimeoutError when no answer arrives.
        errors.UnexpectedStatus: With any other client, for any status other than the documented success.
        httpx.TimeoutException: With any other client, if no answer arrives within the timeout (this
            call's, else Client.timeout).

    Returns:
        Response[ProcessInfo]
    """

    kwargs = _get_kwargs(
        body=body,
    )
    if not isinstance(timeout, Unset):
        kwargs["timeout"] = timeout

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient | Client,
    body: StartProcessRequest,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> ProcessInfo:
    """Start a process

     Start a new process through the sandbox proxy. Set `stdin_mode` to `pipe` to write to its stdin
    later.

    Args:
        body (StartProcessRequest):

    Raises:
        tensorlake_sandbox.SandboxError: With a tensorlake_sandbox.SandboxClient, for any status other
            than the documented success (the subclass for the status, e.g. AuthenticationError), and as
            SandboxConnectionError / SandboxTimeoutError when no answer arrives.
        errors.UnexpectedStatus: With any other client, for any status other than the documented success.
        httpx.TimeoutException: With any other client, if no answer arrives within the timeout (this
            call's, else Client.timeout).

    Returns:
        ProcessInfo
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
            timeout=timeout,
        )
    ).parsed
