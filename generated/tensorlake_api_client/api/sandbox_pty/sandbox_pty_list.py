from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.pty_session_list import PtySessionList
from ...types import UNSET, Response, Unset


def _get_kwargs() -> dict[str, Any]:

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/pty",
    }

    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> PtySessionList:
    if response.status_code == 200:
        response_200 = PtySessionList.from_dict(response.json())

        return response_200

    raise errors.UnexpectedStatus(response.status_code, response.content)


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[PtySessionList]:
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
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> Response[PtySessionList]:
    """List PTY sessions

     Every PTY session of this sandbox, exited ones included until removed. No tokens.

    Raises:
        tensorlake_sandbox.SandboxError: With a tensorlake_sandbox.SandboxClient, for any status other
            than the documented success (the subclass for the status, e.g. AuthenticationError), and as
            SandboxConnectionError / SandboxTimeoutError when no answer arrives.
        errors.UnexpectedStatus: With any other client, for any status other than the documented success.
        httpx.TimeoutException: With any other client, if no answer arrives within the timeout (this
            call's, else Client.timeout).

    Returns:
        Response[PtySessionList]
    """

    kwargs = _get_kwargs()
    if not isinstance(timeout, Unset):
        kwargs["timeout"] = timeout

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient | Client,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> PtySessionList:
    """List PTY sessions

     Every PTY session of this sandbox, exited ones included until removed. No tokens.

    Raises:
        tensorlake_sandbox.SandboxError: With a tensorlake_sandbox.SandboxClient, for any status other
            than the documented success (the subclass for the status, e.g. AuthenticationError), and as
            SandboxConnectionError / SandboxTimeoutError when no answer arrives.
        errors.UnexpectedStatus: With any other client, for any status other than the documented success.
        httpx.TimeoutException: With any other client, if no answer arrives within the timeout (this
            call's, else Client.timeout).

    Returns:
        PtySessionList
    """

    return sync_detailed(
        client=client,
        timeout=timeout,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> Response[PtySessionList]:
    """List PTY sessions

     Every PTY session of this sandbox, exited ones included until removed. No tokens.

    Raises:
        tensorlake_sandbox.SandboxError: With a tensorlake_sandbox.SandboxClient, for any status other
            than the documented success (the subclass for the status, e.g. AuthenticationError), and as
            SandboxConnectionError / SandboxTimeoutError when no answer arrives.
        errors.UnexpectedStatus: With any other client, for any status other than the documented success.
        httpx.TimeoutException: With any other client, if no answer arrives within the timeout (this
            call's, else Client.timeout).

    Returns:
        Response[PtySessionList]
    """

    kwargs = _get_kwargs()
    if not isinstance(timeout, Unset):
        kwargs["timeout"] = timeout

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient | Client,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> PtySessionList:
    """List PTY sessions

     Every PTY session of this sandbox, exited ones included until removed. No tokens.

    Raises:
        tensorlake_sandbox.SandboxError: With a tensorlake_sandbox.SandboxClient, for any status other
            than the documented success (the subclass for the status, e.g. AuthenticationError), and as
            SandboxConnectionError / SandboxTimeoutError when no answer arrives.
        errors.UnexpectedStatus: With any other client, for any status other than the documented success.
        httpx.TimeoutException: With any other client, if no answer arrives within the timeout (this
            call's, else Client.timeout).

    Returns:
        PtySessionList
    """

    return (
        await asyncio_detailed(
            client=client,
            timeout=timeout,
        )
    ).parsed
