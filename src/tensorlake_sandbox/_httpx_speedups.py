"""Per-request savings for the sync httpx client, found by profiling a 16-byte stdin write.

Each is local to the shim's own httpx clients and changes nothing that is sent:

* `HeadWithBodyBackend`: httpcore writes a request's head and its body with two socket
  sends, so a small write costs two sends (and the server two wake-ups). The head is held
  back and sent with the first piece of the body (or before the response is read, when
  there is no body): one send per small request. Bytes and their order are unchanged.
* `SetCookieOnlyCookies`: httpx parses every response for cookies through ``http.cookiejar``;
  the sandbox API sets none, so responses without a ``Set-Cookie`` header are skipped.

(The relative URL of each generated call is merged with the base URL once per path: see
``_SyncHTTP.build_request``.)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

__all__ = ["HeadWithBodyBackend", "SetCookieOnlyCookies"]

# A head (or body piece) up to this size is joined with what follows it; larger ones go alone.
_JOIN = 64 * 1024


class _HeadWithBodyStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner
        self._held: bytes | None = None
        self._new_request = True  # the first write after a read (or ever) is a request's head

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._held is not None:
            held, self._held = self._held, None
            # httpcore ignores a failed request write and reads the response (a server may
            # answer and close early); the read below then fails or succeeds as it would.
            with contextlib.suppress(httpcore.WriteError):
                self._inner.write(held, timeout)
        self._new_request = True
        return self._inner.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            if len(buffer) <= _JOIN:
                self._inner.write(held + buffer, timeout)
                return
            self._inner.write(held, timeout)
        elif self._new_request and len(buffer) <= _JOIN:
            self._new_request = False
            self._held = bytes(buffer)
            return
        self._new_request = False
        # As a memoryview: httpcore sends what the socket takes and slices off the rest, and
        # slicing bytes copies them (a 2 MiB piece, once per partial send).
        self._inner.write(memoryview(buffer), timeout)  # type: ignore[arg-type]

    def close(self) -> None:
        self._held = None
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _HeadWithBodyStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class HeadWithBodyBackend(httpcore.NetworkBackend):
    """httpcore's sync network backend, with each request's head sent with its body."""

    def __init__(self, inner: httpcore.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _HeadWithBodyStream(
            self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        return _HeadWithBodyStream(self._inner.connect_unix_socket(path, timeout, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def speed_up(transport: httpx.BaseTransport) -> None:
    """Give httpx's default sync transport the `HeadWithBodyBackend`; leave any other alone."""
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(transport, httpx.HTTPTransport) and isinstance(backend, httpcore.NetworkBackend):
        pool._network_backend = HeadWithBodyBackend(backend)  # type: ignore[union-attr]


class SetCookieOnlyCookies(httpx.Cookies):
    """`httpx.Cookies` that parses a response only when it sets a cookie."""

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            super().extract_cookies(response)
