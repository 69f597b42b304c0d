"""tensorlake_sandbox: the hand-written layer over the generated ``tensorlake_api_client``.

``sandbox_client`` gives the generated functions a client that knows the sandbox's URL and
key; the errors here are what it raises. ``write_stdin`` / ``awrite_stdin`` stream any
source to a process's stdin without losing or duplicating a byte; ``close_stdin`` sends
EOF; ``stdin_writer`` wraps both in a context manager. ``run`` / ``start`` (and the async
``arun`` / ``astart``) drive a whole process the way `subprocess` does. ``open_terminal`` /
``aopen_terminal`` run a program on an interactive terminal (a PTY session).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    __version__: str
    from ._aprocess import AsyncLineStream, AsyncRemoteProcess, arun, astart
    from ._client import API_KEY_ENV, DEFAULT_TIMEOUT, SandboxClient, sandbox_client
    from ._errors import (
        AuthenticationError,
        BadRequestError,
        DeliveryUnknownError,
        OutputLostError,
        PayloadTooLargeError,
        ProcessNotFoundError,
        SandboxConnectionError,
        SandboxError,
        SandboxStatusError,
        SandboxTimeoutError,
        SandboxUnavailableError,
        SpawnError,
        StdinNotWritableError,
        TerminalClosedError,
        TerminalNotFoundError,
        TooManyTerminalsError,
        error_for_status,
        raise_for_response,
    )
    from ._process import LineStream, RemoteProcess, run, start
    from ._process_common import OutputLine
    from ._retry import RetryPolicy
    from ._stdin import (
        DEFAULT_CHUNK_SIZE,
        AsyncStdinWriter,
        StdinWriter,
        aclose_stdin,
        astdin_writer,
        awrite_stdin,
        close_stdin,
        stdin_writer,
        write_stdin,
    )
    from ._urls import DEFAULT_PROXY_HOST, is_loopback_host, sandbox_url
    from .terminal import (
        AsyncTerminal,
        Terminal,
        aattach_terminal,
        aopen_terminal,
        attach_terminal,
        open_terminal,
    )

# Names are imported on first use, so that `tensorlake-sandbox --help` does not pay for
# httpx and the generated client.
_LAZY: dict[str, str] = {
    "API_KEY_ENV": "._client",
    "AsyncLineStream": "._aprocess",
    "AsyncRemoteProcess": "._aprocess",
    "AsyncStdinWriter": "._stdin",
    "AsyncTerminal": ".terminal",
    "AuthenticationError": "._errors",
    "BadRequestError": "._errors",
    "DEFAULT_CHUNK_SIZE": "._stdin",
    "DEFAULT_PROXY_HOST": "._urls",
    "DEFAULT_TIMEOUT": "._client",
    "DeliveryUnknownError": "._errors",
    "LineStream": "._process",
    "OutputLine": "._process_common",
    "OutputLostError": "._errors",
    "PayloadTooLargeError": "._errors",
    "ProcessNotFoundError": "._errors",
    "RemoteProcess": "._process",
    "RetryPolicy": "._retry",
    "SandboxClient": "._client",
    "SandboxConnectionError": "._errors",
    "SandboxError": "._errors",
    "SandboxStatusError": "._errors",
    "SandboxTimeoutError": "._errors",
    "SandboxUnavailableError": "._errors",
    "SpawnError": "._errors",
    "StdinNotWritableError": "._errors",
    "StdinWriter": "._stdin",
    "Terminal": ".terminal",
    "TerminalClosedError": "._errors",
    "TerminalNotFoundError": "._errors",
    "TooManyTerminalsError": "._errors",
    "aattach_terminal": ".terminal",
    "aclose_stdin": "._stdin",
    "aopen_terminal": ".terminal",
    "arun": "._aprocess",
    "astart": "._aprocess",
    "astdin_writer": "._stdin",
    "attach_terminal": ".terminal",
    "awrite_stdin": "._stdin",
    "close_stdin": "._stdin",
    "error_for_status": "._errors",
    "is_loopback_host": "._urls",
    "open_terminal": ".terminal",
    "raise_for_response": "._errors",
    "run": "._process",
    "sandbox_client": "._client",
    "sandbox_url": "._urls",
    "start": "._process",
    "stdin_writer": "._stdin",
    "write_stdin": "._stdin",
}

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_PROXY_HOST",
    "DEFAULT_TIMEOUT",
    "AsyncLineStream",
    "AsyncRemoteProcess",
    "AsyncStdinWriter",
    "AsyncTerminal",
    "AuthenticationError",
    "BadRequestError",
    "DeliveryUnknownError",
    "LineStream",
    "OutputLine",
    "OutputLostError",
    "PayloadTooLargeError",
    "ProcessNotFoundError",
    "RemoteProcess",
    "RetryPolicy",
    "SandboxClient",
    "SandboxConnectionError",
    "SandboxError",
    "SandboxStatusError",
    "SandboxTimeoutError",
    "SandboxUnavailableError",
    "SpawnError",
    "StdinNotWritableError",
    "StdinWriter",
    "Terminal",
    "TerminalClosedError",
    "TerminalNotFoundError",
    "TooManyTerminalsError",
    "aattach_terminal",
    "aclose_stdin",
    "aopen_terminal",
    "arun",
    "astart",
    "astdin_writer",
    "attach_terminal",
    "awrite_stdin",
    "close_stdin",
    "error_for_status",
    "is_loopback_host",
    "open_terminal",
    "raise_for_response",
    "run",
    "sandbox_client",
    "sandbox_url",
    "start",
    "stdin_writer",
    "write_stdin",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        globals()[name] = value = version("tensorlake-sandbox-client")
        return value
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
