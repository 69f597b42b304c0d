"""tensorlake_sandbox: the hand-written layer over the generated ``tensorlake_api_client``.

``sandbox_client`` gives the generated functions a client that knows the sandbox's URL and
key; the errors here are what it raises. ``run`` / ``start`` drive a whole process the way
`subprocess` does. ``write_stdin`` streams any source to a process's stdin without losing or
duplicating a byte (``close=True`` then sends EOF); a `StdinWriter` does both from a ``with``
block. ``Terminal.open`` runs a program on an interactive terminal (a PTY session).

One async naming scheme (httpx's): the async twin of a function is ``a<name>`` (``arun``,
``astart``, ``awrite_stdin``), of a class ``Async<Name>`` (`AsyncRemoteProcess`,
`AsyncStdinWriter`, `AsyncTerminal`), whose methods keep the sync names and are awaited
(closing is ``aclose``, Python's own name for it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    __version__: str
    from ._async._process import AsyncRemoteProcess, arun, astart
    from ._async._stdin import AsyncStdinWriter, awrite_stdin
    from ._async._terminal import AsyncTerminal
    from ._client import SandboxClient, sandbox_client
    from ._delivery import RetryPolicy
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
    )
    from ._process_rules import OutputLine
    from ._sync._process import RemoteProcess, run, start
    from ._sync._stdin import StdinWriter, write_stdin
    from ._sync._terminal import Terminal

# Where each public name lives; names are imported on first use, so that
# `tensorlake-sandbox --help` does not pay for httpx and the generated client.
_LAZY: dict[str, str] = {
    "AsyncRemoteProcess": "._async._process",
    "AsyncStdinWriter": "._async._stdin",
    "AsyncTerminal": "._async._terminal",
    "AuthenticationError": "._errors",
    "BadRequestError": "._errors",
    "DeliveryUnknownError": "._errors",
    "OutputLine": "._process_rules",
    "OutputLostError": "._errors",
    "PayloadTooLargeError": "._errors",
    "ProcessNotFoundError": "._errors",
    "RemoteProcess": "._sync._process",
    "RetryPolicy": "._delivery",
    "SandboxClient": "._client",
    "SandboxConnectionError": "._errors",
    "SandboxError": "._errors",
    "SandboxStatusError": "._errors",
    "SandboxTimeoutError": "._errors",
    "SandboxUnavailableError": "._errors",
    "SpawnError": "._errors",
    "StdinNotWritableError": "._errors",
    "StdinWriter": "._sync._stdin",
    "Terminal": "._sync._terminal",
    "TerminalClosedError": "._errors",
    "TerminalNotFoundError": "._errors",
    "TooManyTerminalsError": "._errors",
    "arun": "._async._process",
    "astart": "._async._process",
    "awrite_stdin": "._async._stdin",
    "run": "._sync._process",
    "sandbox_client": "._client",
    "start": "._sync._process",
    "write_stdin": "._sync._stdin",
}

__all__ = [
    "AsyncRemoteProcess",
    "AsyncStdinWriter",
    "AsyncTerminal",
    "AuthenticationError",
    "BadRequestError",
    "DeliveryUnknownError",
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
    "arun",
    "astart",
    "awrite_stdin",
    "run",
    "sandbox_client",
    "start",
    "write_stdin",
]

# Names of earlier versions, no longer public (README, "Renames"): each says what replaces it.
# The internal ones stay importable from the private module named.
RENAMED: dict[str, str] = {
    "open_terminal": "use Terminal.open(client, command, args, ...)",
    "attach_terminal": "use Terminal.attach(client, session_id, token)",
    "aopen_terminal": "use await AsyncTerminal.open(client, command, args, ...)",
    "aattach_terminal": "use await AsyncTerminal.attach(client, session_id, token)",
    "stdin_writer": "use StdinWriter(client, pid, ...) (the same arguments)",
    "astdin_writer": "use AsyncStdinWriter(client, pid, ...) (the same arguments)",
    "close_stdin": "use write_stdin(client, pid, b'', close=True)",
    "aclose_stdin": "use await awrite_stdin(client, pid, b'', close=True)",
    "LineStream": "it is the type of RemoteProcess.stdout; annotate with Iterator[str]",
    "AsyncLineStream": "it is the type of AsyncRemoteProcess.stdout; annotate with AsyncIterator[str]",
    "API_KEY_ENV": "the key's environment variable is TENSORLAKE_API_KEY "
    "(internal: tensorlake_sandbox._client)",
    "DEFAULT_TIMEOUT": "sandbox_client's default timeout is 60 s (10 s to connect) "
    "(internal: tensorlake_sandbox._client)",
    "DEFAULT_CHUNK_SIZE": "write_stdin's default chunk_size is 2 MiB "
    "(internal: tensorlake_sandbox._delivery)",
    "DEFAULT_PROXY_HOST": "sandbox_client(sandbox) builds the URL; pass proxy_host= to change the host "
    "(internal: tensorlake_sandbox._urls)",
    "sandbox_url": "sandbox_client(sandbox) builds the URL (internal: tensorlake_sandbox._urls)",
    "is_loopback_host": "internal now: tensorlake_sandbox._urls",
    "error_for_status": "a SandboxClient raises the typed SandboxStatusError itself "
    "(internal: tensorlake_sandbox._errors)",
    "raise_for_response": "a SandboxClient raises the typed SandboxStatusError itself "
    "(internal: tensorlake_sandbox._errors)",
}


class RenamedError(ImportError):
    """A name of an earlier version was asked for; the message says what replaces it.

    An ImportError, so that ``from tensorlake_sandbox import old_name`` shows the message (Python
    replaces an AttributeError from a module ``__getattr__`` with a bare "cannot import name").
    """


# Hidden from type checkers: for them every public name is imported above, and any other is an
# error (a module __getattr__ would make every unknown name Any).
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        if name == "__version__":
            from importlib.metadata import version

            globals()[name] = value = version("tensorlake-sandbox-client")
            return value
        module = _LAZY.get(name)
        if module is None:
            hint = RENAMED.get(name)
            if hint is not None:
                raise RenamedError(
                    f"tensorlake_sandbox.{name} is no longer public: {hint} (README, 'Renames')", name=name
                )
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, __name__), name)
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
