"""Who may talk to a local sandbox: a bearer token on every request, and loopback Host names only.

The Host check defeats DNS rebinding: a web page cannot make a browser send a request to
``127.0.0.1`` under a name the page controls. The token check compares in constant time.
Both run before routing, as plain ASGI middleware, so a rejected request reaches no handler.
"""

from __future__ import annotations

import copy
import hmac
import json
import logging
import re
import secrets
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._urls import is_loopback_host as host_is_loopback

__all__ = [
    "DRAIN_LIMIT",
    "RedactTokens",
    "SecurityMiddleware",
    "expects_continue",
    "generate_token",
    "host_is_loopback",
    "host_is_sdk_local_name",
    "log_config",
    "redact_tokens",
    "split_host_header",
]

# A refused request's body is read (and dropped) up to this many bytes before answering, so
# that a client in the middle of an upload sees the answer rather than a reset connection.
# Past it, or when the client waits for "100 Continue", the connection is closed instead.
DRAIN_LIMIT = 4 * 1024 * 1024


def expects_continue(scope: Scope) -> bool:
    """True when the client waits for "100 Continue" before sending its body."""
    return any(k == b"expect" and v.lower() == b"100-continue" for k, v in scope["headers"])


# A token in a query string (``/api/v1/pty/ID/ws?token=...``, as the official SDK sends it):
# the request log shows the parameter's name, never its value.
_QUERY_TOKEN = re.compile(r"(?i)([?&][^=&\s\"]*token=)[^&\s\"]*")


def redact_tokens(text: str) -> str:
    return _QUERY_TOKEN.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    """Redacts query-string tokens from every record of the handler it is on (access and error log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_tokens(record.msg)
        if isinstance(record.args, tuple):  # uvicorn's access formatter reads the tuple's items
            record.args = tuple(redact_tokens(a) if isinstance(a, str) else a for a in record.args)
        return True


def log_config(base: dict[str, Any]) -> dict[str, Any]:
    """uvicorn's logging config ``base`` with `RedactTokens` on each of its handlers."""
    config = copy.deepcopy(base)
    config.setdefault("filters", {})["redact_tokens"] = {"()": RedactTokens}
    for handler in config.get("handlers", {}).values():
        handler["filters"] = [*handler.get("filters", []), "redact_tokens"]
    return config


def generate_token() -> str:
    """A fresh random bearer token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def split_host_header(value: str) -> str:
    """The host name of a Host header value, without its port and brackets; "" when malformed."""
    value = value.strip()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return ""
        rest = value[end + 1 :]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return ""
        return value[1:end]
    host, sep, port = value.rpartition(":")
    if not sep:
        return value
    if not port.isdigit() or ":" in host:
        return ""
    return host


# `<sandbox-id>.local`: what Tensorlake's official SDK sends as Host to a proxy URL on localhost.
_SDK_LOCAL_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_-]{0,62})\.local")


def host_is_sdk_local_name(host: str) -> bool:
    """True for a one-label ``<name>.local`` Host, as the official SDK sends to a localhost proxy.

    Accepting it weakens nothing: such a name carries no credentials (every request still
    needs the token), and a page that got a browser to resolve it to 127.0.0.1 has no token.
    """
    return _SDK_LOCAL_NAME.fullmatch(host.rstrip(".")) is not None


async def _drain(scope: Scope, receive: Receive) -> bool:
    """Read and drop the body, up to DRAIN_LIMIT; True when it was read to its end."""
    if scope.get("method") in ("GET", "HEAD", "DELETE"):
        return True
    if expects_continue(scope):
        return False  # reading would send "100 Continue"
    seen = 0
    while seen <= DRAIN_LIMIT:
        message = await receive()
        if message["type"] != "http.request":
            return False
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return True
    return False


async def _reject(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    code: str,
    error: str,
    extra: list[tuple[bytes, bytes]],
    *,
    drain: bool = True,
) -> None:
    if scope["type"] == "websocket":  # refuse the upgrade with an HTTP answer, and close
        body = json.dumps({"error": error, "code": code}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            *extra,
        ]
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    complete = drain and await _drain(scope, receive)
    body = json.dumps({"error": error, "code": code}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    if not complete:
        headers.append((b"connection", b"close"))
    start: Message = {"type": "http.response.start", "status": status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})


def _token_only_websocket(scope: Scope, session_token: Callable[[Scope], bool]) -> bool:
    """A websocket to a route that checks its session token (the PTY attach: ``session_token``,
    from _routes.py) sent with no bearer key.

    Tensorlake's docs connect to a terminal with its session token alone; a bearer key that
    is sent must still be right (so this is only for one without any Authorization header).
    """
    return (
        scope["type"] == "websocket"
        and not any(k == b"authorization" for k, _ in scope["headers"])
        and session_token(scope)
    )


def _no_route(scope: Scope) -> bool:
    return False


class SecurityMiddleware:
    """Rejects requests with a foreign Host (421) or without the right bearer token (401)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str,
        allowed_hosts: frozenset[str] | None = None,
        session_token: Callable[[Scope], bool] = _no_route,
    ) -> None:
        """``allowed_hosts``: extra host names accepted besides loopback ones; None accepts any host.
        ``session_token`` tells the requests that may come with a session's token instead of the
        bearer key (`takes_session_token` of _routes.py)."""
        self.app = app
        self._session_token = session_token
        self._expected = f"Bearer {token}".encode()
        self._allowed_hosts = allowed_hosts

    def _host_ok(self, scope: Scope) -> bool:
        values = [v for k, v in scope["headers"] if k == b"host"]
        if len(values) != 1:
            return False
        host = split_host_header(values[0].decode("latin-1"))
        if not host:
            return False
        if host_is_loopback(host) or host_is_sdk_local_name(host):
            return True
        return self._allowed_hosts is None or host.lower() in self._allowed_hosts

    def _token_ok(self, scope: Scope) -> bool:
        values = [v for k, v in scope["headers"] if k == b"authorization"]
        # Always compare once, in constant time, whatever was sent.
        given = values[0] if len(values) == 1 else b""
        return hmac.compare_digest(given, self._expected) and len(values) == 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):  # websockets: the PTY endpoint
            if scope["type"] == "lifespan":
                await self.app(scope, receive, send)
            return
        names = [k for k, _ in scope["headers"]]
        if b"transfer-encoding" in names and b"content-length" in names:
            # Ambiguous framing (the shape of request smuggling): refuse, read nothing, close.
            await _reject(
                scope,
                receive,
                send,
                400,
                "BAD_REQUEST",
                "a request must not carry both Content-Length and Transfer-Encoding",
                [],
                drain=False,
            )
            return
        if not self._host_ok(scope):
            await _reject(
                scope,
                receive,
                send,
                421,
                "MISDIRECTED_REQUEST",
                "this local sandbox answers only to localhost, 127.0.0.1, [::1] or <name>.local "
                "in the Host header",
                [],
            )
            return
        if not self._token_ok(scope) and not _token_only_websocket(scope, self._session_token):
            await _reject(
                scope,
                receive,
                send,
                401,
                "UNAUTHORIZED",
                "missing or invalid bearer token: send 'Authorization: Bearer <token>'",
                [(b"www-authenticate", b'Bearer realm="tensorlake-local-sandbox"')],
            )
            return
        await self.app(scope, receive, send)
