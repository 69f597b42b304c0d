"""Request bodies from open files: which are file bodies, their length, bytes or a stream.

httpx sends a file only on a sync client, with the whole file's length; the generated code
passes ``File.payload`` straight to it (README, "The client"). The readers are in `_async/_transport.py`.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from typing import Any, BinaryIO, TypeGuard

import httpx

__all__ = ["CHUNK", "adapt_file_body", "is_file_body", "remaining_length", "whole_piece"]

# Bytes read from a file per chunk while streaming a body: 1 MiB halves the client's CPU
# for bulk writes against 64 KiB (fewer socket sends; measured by make bench).
CHUNK = 1024 * 1024


def is_file_body(content: Any) -> TypeGuard[BinaryIO]:
    """True for a binary file-like object (anything with ``read``), not bytes or an iterator."""
    return hasattr(content, "read") and not isinstance(content, (bytes, bytearray, memoryview, str))


def remaining_length(f: BinaryIO) -> int | None:
    """Bytes from the current position to the end, or None when that cannot be known (a pipe)."""
    if isinstance(f, io.BytesIO):
        # Not len(f.getbuffer()): exporting the buffer makes a BytesIO built from bytes copy it.
        pos = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(pos)
        return max(0, end - pos)
    try:
        st = os.fstat(f.fileno())
        pos = f.tell()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        pass
    else:
        import stat

        if stat.S_ISREG(st.st_mode):
            return max(0, st.st_size - pos)
        return None
    try:
        if not f.seekable():
            return None
        pos = f.tell()
        end = f.seek(0, io.SEEK_END)
        f.seek(pos)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    return max(0, end - pos)


def whole_piece(f: io.BytesIO, length: int) -> bytes:
    """The ``length`` bytes at ``f``'s position as one piece, moving past them.

    A `io.BytesIO` made from bytes and read from the start gives back that same bytes
    object, so a stdin chunk goes to the socket without a copy (reading it in pieces copies
    each). The piece is let go of as soon as it has been sent.
    """
    pos = f.tell()
    data = f.getvalue()
    if pos or len(data) != length:
        data = data[pos : pos + length]
    f.seek(pos + len(data))
    return data


# An in-memory body this small is sent as bytes; a larger one is streamed (a finished stream
# lets go of its data at once, a bytes body stays in httpx's reference cycles until collected).
_SMALL_BODY = 64 * 1024


def adapt_file_body(
    kwargs: dict[str, Any],
    iterate: Callable[[Any, int | None], Any],
    whole: Callable[[io.BytesIO, int], Any],
) -> None:
    """Turn a file-like ``content`` into bytes (small BytesIO) or a stream from its position.

    A larger `io.BytesIO` is streamed as one piece (``whole``: no copy), a file in pieces
    (``iterate``).
    """
    content = kwargs.get("content")
    if not is_file_body(content):
        return
    length = remaining_length(content)
    if isinstance(content, io.BytesIO) and length is not None:
        if length <= _SMALL_BODY:
            kwargs["content"] = content.read(length)
            return
        stream = whole(content, length)
    else:
        stream = iterate(content, length)
    headers = httpx.Headers(kwargs.get("headers"))
    if length is not None:
        headers["Content-Length"] = str(length)
    kwargs["content"] = stream
    kwargs["headers"] = headers
