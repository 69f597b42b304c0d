from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.send_signal_request import SendSignalRequest
from ...models.send_signal_response import SendSignalResponse
from ...types import UNSET, Response, Unset


def _get_kwargs(
    pid: int | str,
    *,
    body: SendSignalRequest,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/api/v1/processes/{pid}/signal".format(
            pid=quote(str(pid), safe=""),
        ),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> SendSignalResponse:
    if response.status_code == 200:
        response_200 = SendSignalResponse.from_dict(response.json())

        return response_200

    raise errors.UnexpectedStatus(response.status_code, response.content)


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[SendSignalResponse]:
    parsed = _parse_response(client=client, response=response)
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
    body: SendSignalRequest,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> Response[SendSignalResponse]:
    """Send a signal

     Send a POSIX signal such as `SIGTERM` (15) or `SIGKILL` (9) to a running process's whole process
    group, as a terminal's job control would.

    Args:
        pid (int | str):
        body (SendSignalRequest):

    Raises:
        tensorlake_sandbox.SandboxError: With a tensorlake_sandbox.SandboxClient, for any status other
            than the documented success (the subclass for the status, e.g. AuthenticationError), and as
            SandboxConnectionError / SandboxTimeoutError when no answer arrives.
        errors.UnexpectedStatus: With any other client, for any status other than the documented success.
        httpx.TimeoutException: With any other client, if no answer arrives within the timeout (this
            call's, else Client.timeout).

    Returns:
        Response[SendSignalResponse]
    """

    kwargs = _get_kwargs(
        pid=pid,
        body=body,
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
    body: SendSignalRequest,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> SendSignalResponse:
    """Send a signal

     Send a POSIX signal such as `SIGTERM` (15) or `SIGKILL` (9) to a running process's whole process
    group, as a terminal's job control would.

    Args:
        pid (int | str):
        body (SendSignalRequest):

    Raises:
        tensorlake_sandbox.SandboxError: With a tensorlake_sandbox.SandboxClient, for any status other
            than the documented success (the subclass for the status, e.g. AuthenticationError), and as
            SandboxConnectionError / SandboxTimeoutError when no answer arrives.
        errors.UnexpectedStatus: With any other client, for any status other than the documented success.
        httpx.TimeoutException: With any other client, if no answer arrives within the timeout (this
            call's, else Client.timeout).

    Returns:
        SendSignalResponse
    """

    return sync_detailed(
        pid=pid,
        client=client,
        body=body,
        timeout=timeout,
    ).parsed


async def asyncio_detailed(
    pid: int | str,
    *,
    client: AuthenticatedClient | Client,
    body: SendSignalRequest,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> Response[SendSignalResponse]:
    """Send a signal

     Send a POSIX signal such as `SIGTERM` (15) or `SIGKILL` (9) to a running process's whole process
    group, as a terminal's job control would.

    Args:
        pid (int | str):
        body (SendSignalRequest):

    Raises:
        tensorlake_sandbox.SandboxError: With a tensorlake_sandbox.SandboxClient, for any status other
            than the documented success (the subclass for the status, e.g. AuthenticationError), and as
            SandboxConnectionError / SandboxTimeoutError when no answer arrives.
        errors.UnexpectedStatus: With any other client, for any status other than the documented success.
        httpx.TimeoutException: With any other client, if no answer arrives within the timeout (this
            call's, else Client.timeout).

    Returns:
        Response[SendSignalResponse]
    """

    kwargs = _get_kwargs(
        pid=pid,
        body=body,
    )
    if not isinstance(timeout, Unset):
        kwargs["timeout"] = timeout

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    pid: int | str,
    *,
    client: AuthenticatedClient | Client,
    body: SendSignalRequest,
    timeout: float | httpx.Timeout | None | Unset = UNSET,
) -> SendSignalResponse:
    """Send a signal

     Send a POSIX signal such as `SIGTERM` (15) or `SIGKILL` (9) to a running process's whole process
    group, as a terminal's job control would.

    Args:
        pid (int | str):
        body (SendSignalRequest):

    Raises:
        tensorlake_sandbox.SandboxError: With a tensorlake_sandbox.SandboxClient, for any status other
            than the documented success (the subclass for the status, e.g. AuthenticationError), and as
            SandboxConnectionError / SandboxTimeoutError when no answer arrives.
        errors.UnexpectedStatus: With any other client, for any status other than the documented success.
        httpx.TimeoutException: With any other client, if no answer arrives within the timeout (this
            call's, else Client.timeout).

    Returns:
        SendSignalResponse
    """

    return (
        await asyncio_detailed(
            pid=pid,
            client=client,
            body=body,
            timeout=timeout,
        )
    ).parsed
