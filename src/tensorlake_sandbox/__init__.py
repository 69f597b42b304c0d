"""tensorlake_sandbox: the hand-written layer over the generated ``tensorlake_api_client``.

``sandbox_client`` gives the generated functions a client that knows the sandbox's URL and
key; the errors here are what it raises. ``write_stdin`` / ``awrite_stdin`` stream any
source to a process's stdin without losing or duplicating a byte; ``close_stdin`` sends
EOF; ``stdin_writer`` wraps both in a context manager.
"""

from ._client import API_KEY_ENV, DEFAULT_TIMEOUT, SandboxClient, sandbox_client
from ._errors import (
    AuthenticationError,
    BadRequestError,
    DeliveryUnknownError,
    PayloadTooLargeError,
    ProcessNotFoundError,
    SandboxError,
    SandboxUnavailableError,
    StdinNotWritableError,
    error_for_status,
    raise_for_response,
)
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

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_PROXY_HOST",
    "DEFAULT_TIMEOUT",
    "AsyncStdinWriter",
    "AuthenticationError",
    "BadRequestError",
    "DeliveryUnknownError",
    "PayloadTooLargeError",
    "ProcessNotFoundError",
    "RetryPolicy",
    "SandboxClient",
    "SandboxError",
    "SandboxUnavailableError",
    "StdinNotWritableError",
    "StdinWriter",
    "aclose_stdin",
    "astdin_writer",
    "awrite_stdin",
    "close_stdin",
    "error_for_status",
    "is_loopback_host",
    "raise_for_response",
    "sandbox_client",
    "sandbox_url",
    "stdin_writer",
    "write_stdin",
]
