"""tensorlake_sandbox: the hand-written layer over the generated ``tensorlake_api_client``.

``sandbox_client`` gives the generated functions a client that knows the sandbox's URL and
key; the errors here are what it raises.
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
from ._urls import DEFAULT_PROXY_HOST, is_loopback_host, sandbox_url

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_PROXY_HOST",
    "DEFAULT_TIMEOUT",
    "AuthenticationError",
    "BadRequestError",
    "DeliveryUnknownError",
    "PayloadTooLargeError",
    "ProcessNotFoundError",
    "SandboxClient",
    "SandboxError",
    "SandboxUnavailableError",
    "StdinNotWritableError",
    "error_for_status",
    "is_loopback_host",
    "raise_for_response",
    "sandbox_client",
    "sandbox_url",
]
