from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.create_pty_request import CreatePtyRequest
from ...models.create_pty_response import CreatePtyResponse
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    body: CreatePtyRequest,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/pty",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> CreatePtyResponse:
    if response.status_code == 201:
        response_201 = CreatePtyResponse.from_dict(response.json())

        return response_201

    raise errors.UnexpectedStatus(response.status_code, response.content)


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[CreatePtyResponse]:
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
    body: CreatePtyRequest,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> Response[CreatePtyResponse]:
    """Create a PTY session

     Start `command` on a new pseudo-terminal. The answer's `token` authorizes the websocket (`GET
    /api/v1/pty/{session_id}/ws`, see the tag's description) for the session's lifetime; keep it secret.
    `rows` and `cols` are clamped to 1..500 and 1..1000.

    Args:
        body (CreatePtyRequest):

    Raises:
        tensorlake_sandbox.SandboxError: With a tensorlake_sandbox.SandboxClient, for any status other
            than the documented success (the subclass for the status, e.g. AuthenticationError), and as
            SandboxConnectionError / SandboxTimeoutError when no answer arrives.
        errors.UnexpectedStatus: With any other client, for any status other than the documented success.
        httpx.TimeoutException: With any other client, if no answer arrives within the timeout (this
            call's, else Client.timeout).

    Returns:
        Response[CreatePtyResponse]
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
    body: CreatePtyRequest,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> CreatePtyResponse:
    """Create a PTY session

     Start `command` on a new pseudo-terminal. The answer's `token` authorizes the websocket (`GET
    /api/v1/pty/{session_id}/ws`, see the tag's description) for the session's lifetime; keep it secret.
    `rows` and `cols` are clamped to 1..500 and 1..1000.

    Args:
        body (CreatePtyRequest):

    Raises:
        tensorlake_sandbox.SandboxError: With a tensorlake_sandbox.SandboxClient, for any status other
            than the documented success (the subclass for the status, e.g. AuthenticationError), and as
            SandboxConnectionError / SandboxTimeoutError when no answer arrives.
        errors.UnexpectedStatus: With any other client, for any status other than the documented success.
        httpx.TimeoutException: With any other client, if no answer arrives within the timeout (this
            call's, else Client.timeout).

    Returns:
        CreatePtyResponse
    """

    return sync_detailed(
        client=client,
        body=body,
        timeout=timeout,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: CreatePtyRequest,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> Response[CreatePtyResponse]:
    """Create a PTY session

     Start `command` on a new pseudo-terminal. The answer's `token` authorizes the websocket (`GET
    /api/v1/pty/{session_id}/ws`, see the tag's description) for the session's lifetime; keep it secret.
    `rows` and `cols` are clamped to 1..500 and 1..1000.

    Args:
        body (CreatePtyRequest):

    Raises:
        tensorlake_sandbox.SandboxError: With a tensorlake_sandbox.SandboxClient, for any status other
            than the documented success (the subclass for the status, e.g. AuthenticationError), and as
            SandboxConnectionError / SandboxTimeoutError when no answer arrives.
        errors.UnexpectedStatus: With any other client, for any status other than the documented success.
        httpx.TimeoutException: With any other client, if no answer arrives within the timeout (this
            call's, else Client.timeout).

    Returns:
        Response[CreatePtyResponse]
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
    body: CreatePtyRequest,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> CreatePtyResponse:
    """Create a PTY session

     Start `command` on a new pseudo-terminal. The answer's `token` authorizes the websocket (`GET
    /api/v1/pty/{session_id}/ws`, see the tag's description) for the session's lifetime; keep it secret.
    `rows` and `cols` are clamped to 1..500 and 1..1000.

    Args:
        body (CreatePtyRequest):

    Raises:
        tensorlake_sandbox.SandboxError: With a tensorlake_sandbox.SandboxClient, for any status other
            than the documented success (the subclass for the status, e.g. AuthenticationError), and as
            SandboxConnectionError / SandboxTimeoutError when no answer arrives.
        errors.UnexpectedStatus: With any other client, for any status other than the documented success.
        httpx.TimeoutException: With any other client, if no answer arrives within the timeout (this
            call's, else Client.timeout).

    Returns:
        CreatePtyResponse
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
            timeout=timeout,
        )
    ).parsed
