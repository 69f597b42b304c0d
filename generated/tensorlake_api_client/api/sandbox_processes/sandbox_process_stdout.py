from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.output_response import OutputResponse
from ...models.sandbox_proxy_error import SandboxProxyError
from ...types import Response


def _get_kwargs(
    pid: int,
) -> dict[str, Any]:

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/api/v1/processes/{pid}/stdout".format(
            pid=quote(str(pid), safe=""),
        ),
    }

    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> OutputResponse | SandboxProxyError | None:
    if response.status_code == 200:
        response_200 = OutputResponse.from_dict(response.json())

        return response_200

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
) -> Response[OutputResponse | SandboxProxyError]:
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
) -> Response[OutputResponse | SandboxProxyError]:
    """Get stdout

     Read the captured stdout lines for a process.

    Args:
        pid (int):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[OutputResponse | SandboxProxyError]
    """

    kwargs = _get_kwargs(
        pid=pid,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    pid: int,
    *,
    client: AuthenticatedClient | Client,
) -> OutputResponse | SandboxProxyError | None:
    """Get stdout

     Read the captured stdout lines for a process.

    Args:
        pid (int):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        OutputResponse | SandboxProxyError
    """

    return sync_detailed(
        pid=pid,
        client=client,
    ).parsed


async def asyncio_detailed(
    pid: int,
    *,
    client: AuthenticatedClient | Client,
) -> Response[OutputResponse | SandboxProxyError]:
    """Get stdout

     Read the captured stdout lines for a process.

    Args:
        pid (int):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[OutputResponse | SandboxProxyError]
    """

    kwargs = _get_kwargs(
        pid=pid,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    pid: int,
    *,
    client: AuthenticatedClient | Client,
) -> OutputResponse | SandboxProxyError | None:
    """Get stdout

     Read the captured stdout lines for a process.

    Args:
        pid (int):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        OutputResponse | SandboxProxyError
    """

    return (
        await asyncio_detailed(
            pid=pid,
            client=client,
        )
    ).parsed
