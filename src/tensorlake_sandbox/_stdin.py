"""Streaming writes to a process's stdin that never lose or duplicate a byte.

`write_stdin` sends any source (bytes, str, a binary file or pipe, an iterable, and on the
async path an async iterable) in order, one request at a time, each at most ``chunk_size``
bytes, through the generated ``sandbox_process_stdin`` function. Memory stays bounded by
the chunk size whatever the input size; small pieces are coalesced while a request is in
flight, and whatever is available is sent at once, so an interactive producer is never
held back. `close_stdin` delivers EOF; `stdin_writer` is a context manager around both.

Retries (the rule lives in `_retry.classify_failure`): a request is sent again, at most
``RetryPolicy.attempts`` times in all with exponential backoff and jitter (about 3 s in
total by default), only when the sandbox certainly did not receive it: the connection
failed before anything was sent (``httpx.ConnectError``, ``ConnectTimeout``,
``PoolTimeout``), or the proxy answered 503 with a ``code`` saying it did not forward the
request (``SANDBOX_NOT_READY``, ``SANDBOX_UNREACHABLE``, ``AUTH_SERVICE_UNAVAILABLE``).
After a read or write timeout, a dropped connection once bytes may have left, a 502, a
504 or another 5xx, nothing is resent: `DeliveryUnknownError` is raised. A 413 means
nothing was written: the request is halved and the rest of the call keeps the smaller
size. Every error raised for a failed request carries ``bytes_delivered`` (bytes of this
call confirmed before the failing request) and ``request_bytes`` (the failing request's
size), so a caller can resume exactly.

The async half (``_async/_stdin.py``) is the source; the sync half is generated from it.
"""

from ._async._stdin import AsyncStdinWriter, aclose_stdin, astdin_writer, awrite_stdin
from ._delivery import DEFAULT_CHUNK_SIZE
from ._sync._stdin import StdinWriter, close_stdin, stdin_writer, write_stdin

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "AsyncStdinWriter",
    "StdinWriter",
    "aclose_stdin",
    "astdin_writer",
    "awrite_stdin",
    "close_stdin",
    "stdin_writer",
    "write_stdin",
]
