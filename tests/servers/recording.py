"""A real HTTP server that records what arrived (method, path, headers, body digest) and
answers with whatever the test queued (204 by default)."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    length: int
    sha256: str
    head: bytes  # the first 64 KiB of the body


@dataclass
class Reply:
    status: int = 204
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class RecordingApp:
    """ASGI app: records each request, streams its body through sha256 without keeping it."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._replies: list[Reply] = []
        self._lock = threading.Lock()

    def reply(self, status: int, body: bytes = b"", **headers: str) -> None:
        """Queue the reply for the next request (FIFO); with none queued, answer 204."""
        with self._lock:
            self._replies.append(Reply(status, body, {k.replace("_", "-"): v for k, v in headers.items()}))

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._replies.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        digest = hashlib.sha256()
        length = 0
        head = bytearray()
        async for chunk in request.stream():
            digest.update(chunk)
            length += len(chunk)
            if len(head) < 65536:
                head += chunk[: 65536 - len(head)]
        with self._lock:
            self.requests.append(
                Received(
                    request.method,
                    request.url.path,
                    {k.lower(): v for k, v in request.headers.items()},
                    length,
                    digest.hexdigest(),
                    bytes(head),
                )
            )
            reply = self._replies.pop(0) if self._replies else Reply()
        media = reply.headers.pop("content-type", None) or (
            "application/json" if reply.body.startswith(b"{") else "text/html"
        )
        response = Response(
            reply.body or None, status_code=reply.status, headers=reply.headers, media_type=media
        )
        await response(scope, receive, send)
