from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.process_info import ProcessInfo
from ...models.sandbox_proxy_error import SandboxProxyError
from ...models.start_process_request import StartProcessRequest
from ...types import Response


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


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ProcessInfo | SandboxProxyError | None:
    if response.status_code == 201:
        response_201 = ProcessInfo.from_dict(response.json())

        return response_201

    if response.status_code == 400:
        response_400 = SandboxProxyError.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = SandboxProxyError.from_dict(response.json())

        return response_401

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[ProcessInfo | SandboxProxyError]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: StartProcessRequest,
) -> Response[ProcessInfo | SandboxProxyError]:
    """Start a process

     Start a new process through the sandbox proxy. Set `stdin_mode` to `pipe` to write to its stdin
    later.

    Args:
        body (StartProcessRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ProcessInfo | SandboxProxyError]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient | Client,
    body: StartProcessRequest,
) -> ProcessInfo | SandboxProxyError | None:
    """Start a process

     Start a new process through the sandbox proxy. Set `stdin_mode` to `pipe` to write to its stdin
    later.

    Args:
        body (StartProcessRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ProcessInfo | SandboxProxyError
    """

    return sync_detailed(
        client=client,
        body=body,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: StartProcessRequest,
) -> Response[ProcessInfo | SandboxProxyError]:
    """Start a process

     Start a new process through the sandbox proxy. Set `stdin_mode` to `pipe` to write to its stdin
    later.

    Args:
        body (StartProcessRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ProcessInfo | SandboxProxyError]
    """

    kwargs = _get_kwargs(
        body=body,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient | Client,
    body: StartProcessRequest,
) -> ProcessInfo | SandboxProxyError | None:
    """Start a process

     Start a new process through the sandbox proxy. Set `stdin_mode` to `pipe` to write to its stdin
    later.

    Args:
        body (StartProcessRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ProcessInfo | SandboxProxyError
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
        )
    ).parsed
