from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.pty_session_info import PtySessionInfo
from ...types import UNSET, Response, Unset


def _get_kwargs(
    session_id: str,
) -> dict[str, Any]:

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/pty/{session_id}".format(
            session_id=quote(str(session_id), safe=""),
        ),
    }

    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> PtySessionInfo:
    if response.status_code == 200:
        response_200 = PtySessionInfo.from_dict(response.json())

        return response_200

    raise errors.UnexpectedStatus(response.status_code, response.content)


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[PtySessionInfo]:
    parsed = _parse_response(client=client, response=response)
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=parsed,
    )


def sync_detailed(
    session_id: str,
    *,
    client: AuthenticatedClient | Client,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> Response[PtySessionInfo]:
    """Get a PTY session

    Args:
        session_id (str):

    Raises:
        tensorlake_sandbox.SandboxError: With a tensorlake_sandbox.SandboxClient, for any status other
            than the documented success (the subclass for the status, e.g. AuthenticationError), and as
            SandboxConnectionError / SandboxTimeoutError when no answer arrives.
        errors.UnexpectedStatus: With any other client, for any status other than the documented success.
        httpx.TimeoutException: With any other client, if no answer arrives within the timeout (this
            call's, else Client.timeout).

    Returns:
        Response[PtySessionInfo]
    """

    kwargs = _get_kwargs(
        session_id=session_id,
    )
    if not isinstance(timeout, Unset):
        kwargs["timeout"] = timeout

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    session_id: str,
    *,
    client: AuthenticatedClient | Client,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> PtySessionInfo:
    """Get a PTY session

    Args:
        session_id (str):

    Raises:
        tensorlake_sandbox.SandboxError: With a tensorlake_sandbox.SandboxClient, for any status other
            than the documented success (the subclass for the status, e.g. AuthenticationError), and as
            SandboxConnectionError / SandboxTimeoutError when no answer arrives.
        errors.UnexpectedStatus: With any other client, for any status other than the documented success.
        httpx.TimeoutException: With any other client, if no answer arrives within the timeout (this
            call's, else Client.timeout).

    Returns:
        PtySessionInfo
    """

    return sync_detailed(
        session_id=session_id,
        client=client,
        timeout=timeout,
    ).parsed


async def asyncio_detailed(
    session_id: str,
    *,
    client: AuthenticatedClient | Client,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> Response[PtySessionInfo]:
    """Get a PTY session

    Args:
        session_id (str):

    Raises:
        tensorlake_sandbox.SandboxError: With a tensorlake_sandbox.SandboxClient, for any status other
            than the documented success (the subclass for the status, e.g. AuthenticationError), and as
            SandboxConnectionError / SandboxTimeoutError when no answer arrives.
        errors.UnexpectedStatus: With any other client, for any status other than the documented success.
        httpx.TimeoutException: With any other client, if no answer arrives within the timeout (this
            call's, else Client.timeout).

    Returns:
        Response[PtySessionInfo]
    """

    kwargs = _get_kwargs(
        session_id=session_id,
    )
    if not isinstance(timeout, Unset):
        kwargs["timeout"] = timeout

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    session_id: str,
    *,
    client: AuthenticatedClient | Client,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> PtySessionInfo:
    """Get a PTY session

    Args:
        session_id (str):

    Raises:
        tensorlake_sandbox.SandboxError: With a tensorlake_sandbox.SandboxClient, for any status other
            than the documented success (the subclass for the status, e.g. AuthenticationError), and as
            SandboxConnectionError / SandboxTimeoutError when no answer arrives.
        errors.UnexpectedStatus: With any other client, for any status other than the documented success.
        httpx.TimeoutException: With any other client, if no answer arrives within the timeout (this
            call's, else Client.timeout).

    Returns:
        PtySessionInfo
    """

    return (
        await asyncio_detailed(
            session_id=session_id,
            client=client,
            timeout=timeout,
        )
    ).parsed
