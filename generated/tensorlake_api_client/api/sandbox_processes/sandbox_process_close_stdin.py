from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...types import UNSET, Response, Unset


def _get_kwargs(
    pid: int | str,
) -> dict[str, Any]:

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/processes/{pid}/stdin/close".format(
            pid=quote(str(pid), safe=""),
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
    pid: int | str,
    *,
    client: AuthenticatedClient | Client,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> Response[None]:
    """Close stdin

     Close a process stdin pipe and deliver EOF to the process. Closing an already closed pipe succeeds
    again.

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
        Response[None]
    """

    kwargs = _get_kwargs(
        pid=pid,
    )
    if not isinstance(timeout, Unset):
        kwargs["timeout"] = timeout

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    pid: int | str,
    *,
    client: AuthenticatedClient | Client,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> None:
    """Close stdin

     Close a process stdin pipe and deliver EOF to the process. Closing an already closed pipe succeeds
    again.

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
        None
    """

    return sync_detailed(
        pid=pid,
        client=client,
        timeout=timeout,
    ).parsed


async def asyncio_detailed(
    pid: int | str,
    *,
    client: AuthenticatedClient | Client,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> Response[None]:
    """Close stdin

     Close a process stdin pipe and deliver EOF to the process. Closing an already closed pipe succeeds
    again.

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
        Response[None]
    """

    kwargs = _get_kwargs(
        pid=pid,
    )
    if not isinstance(timeout, Unset):
        kwargs["timeout"] = timeout

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    pid: int | str,
    *,
    client: AuthenticatedClient | Client,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> None:
    """Close stdin

     Close a process stdin pipe and deliver EOF to the process. Closing an already closed pipe succeeds
    again.

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
        None
    """

    return (
        await asyncio_detailed(
            pid=pid,
            client=client,
            timeout=timeout,
        )
    ).parsed
