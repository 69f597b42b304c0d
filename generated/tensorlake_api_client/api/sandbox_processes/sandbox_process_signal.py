from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.sandbox_proxy_error import SandboxProxyError
from ...models.send_signal_request import SendSignalRequest
from ...models.send_signal_response import SendSignalResponse
from ...types import Response


def _get_kwargs(
    pid: int,
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


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> SandboxProxyError | SendSignalResponse | None:
    if response.status_code == 200:
        response_200 = SendSignalResponse.from_dict(response.json())

        return response_200

    if response.status_code == 400:
        response_400 = SandboxProxyError.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = SandboxProxyError.from_dict(response.json())

        return response_401

    if response.status_code == 404:
        response_404 = SandboxProxyError.from_dict(response.json())

        return response_404

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[SandboxProxyError | SendSignalResponse]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    pid: int,
    *,
    client: AuthenticatedClient | Client,
    body: SendSignalRequest,
) -> Response[SandboxProxyError | SendSignalResponse]:
    """Send a signal

     Send a POSIX signal such as `SIGTERM` (15) or `SIGKILL` (9) to a running process.

    Args:
        pid (int):
        body (SendSignalRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[SandboxProxyError | SendSignalResponse]
    """

    kwargs = _get_kwargs(
        pid=pid,
        body=body,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    pid: int,
    *,
    client: AuthenticatedClient | Client,
    body: SendSignalRequest,
) -> SandboxProxyError | SendSignalResponse | None:
    """Send a signal

     Send a POSIX signal such as `SIGTERM` (15) or `SIGKILL` (9) to a running process.

    Args:
        pid (int):
        body (SendSignalRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        SandboxProxyError | SendSignalResponse
    """

    return sync_detailed(
        pid=pid,
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    pid: int,
    *,
    client: AuthenticatedClient | Client,
    body: SendSignalRequest,
) -> Response[SandboxProxyError | SendSignalResponse]:
    """Send a signal

     Send a POSIX signal such as `SIGTERM` (15) or `SIGKILL` (9) to a running process.

    Args:
        pid (int):
        body (SendSignalRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[SandboxProxyError | SendSignalResponse]
    """

    kwargs = _get_kwargs(
        pid=pid,
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    pid: int,
    *,
    client: AuthenticatedClient | Client,
    body: SendSignalRequest,
) -> SandboxProxyError | SendSignalResponse | None:
    """Send a signal

     Send a POSIX signal such as `SIGTERM` (15) or `SIGKILL` (9) to a running process.

    Args:
        pid (int):
        body (SendSignalRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        SandboxProxyError | SendSignalResponse
    """

    return (
        await asyncio_detailed(
            pid=pid,
            client=client,
            body=body,
        )
    ).parsed
