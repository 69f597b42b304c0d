from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...types import UNSET, Response, Unset


def _get_kwargs(
    session_id: str,
) -> dict[str, Any]:

    _kwargs: dict[str, Any] = {
        "method": "delete",
        "url": "/api/v1/pty/{session_id}".format(
            session_id=quote(str(session_id), safe=""),
        ),
    }

    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> None:
    if response.status_code == 204:
        return None

    raise errors.UnexpectedStatus(response.status_code, response.content)


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[None]:
    _parse_response(client=client, response=response)
    parsed = None
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
) -> Response[None]:
    """Kill a PTY session

     Hang up the terminal: SIGHUP to its process group at once, and attached websockets are closed with
    1001. The session stays visible, dead (`is_alive` false, `exit_code` null, `ended_at` set once the
    process is gone) for a 5 s grace; then anything still running gets SIGKILL and the session is
    removed. Also 204 for a session that has already exited. (A session whose process exits by itself
    stays 60 s.)

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
        Response[None]
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
) -> None:
    """Kill a PTY session

     Hang up the terminal: SIGHUP to its process group at once, and attached websockets are closed with
    1001. The session stays visible, dead (`is_alive` false, `exit_code` null, `ended_at` set once the
    process is gone) for a 5 s grace; then anything still running gets SIGKILL and the session is
    removed. Also 204 for a session that has already exited. (A session whose process exits by itself
    stays 60 s.)

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
        None
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
) -> Response[None]:
    """Kill a PTY session

     Hang up the terminal: SIGHUP to its process group at once, and attached websockets are closed with
    1001. The session stays visible, dead (`is_alive` false, `exit_code` null, `ended_at` set once the
    process is gone) for a 5 s grace; then anything still running gets SIGKILL and the session is
    removed. Also 204 for a session that has already exited. (A session whose process exits by itself
    stays 60 s.)

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
        Response[None]
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
) -> None:
    """Kill a PTY session

     Hang up the terminal: SIGHUP to its process group at once, and attached websockets are closed with
    1001. The session stays visible, dead (`is_alive` false, `exit_code` null, `ended_at` set once the
    process is gone) for a 5 s grace; then anything still running gets SIGKILL and the session is
    removed. Also 204 for a session that has already exited. (A session whose process exits by itself
    stays 60 s.)

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
        None
    """

    return (
        await asyncio_detailed(
            session_id=session_id,
            client=client,
            timeout=timeout,
        )
    ).parsed
