"""uvicorn, configured against careless and hostile clients, in the foreground or in a thread.

uvicorn (h11) bounds a request head's size (``h11_max_incomplete_event_size``) and the idle
time between requests (``timeout_keep_alive``), but has no deadline for a request head that
never completes: ``timeout_keep_alive`` is only armed after a response and disarmed by any
byte received (uvicorn issue #157 asks for ``--timeout-request-start``; it is still open).
`GuardedH11Protocol` adds that deadline, and a cap on open connections that closes the
oldest connection still waiting for its request head when a new one arrives over the cap,
so idle or trickling connections cannot starve a real client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.wsproto_impl import WSProtocol

__all__ = [
    "HEADER_TIMEOUT",
    "GuardedH11Protocol",
    "Server",
    "ServerThread",
    "bind",
    "make_config",
    "max_connections",
]

# Seconds a connection may take to send a complete request head (first request or next one).
HEADER_TIMEOUT = 10.0
# Seconds an idle keep-alive connection stays open between requests.
KEEP_ALIVE_TIMEOUT = 5
# The largest request head accepted (h11's default, stated).
MAX_HEAD_BYTES = 16 * 1024
# Connections the kernel queues before they are accepted.
LISTEN_BACKLOG = 128
# Open follow (SSE) streams never end by themselves; shutdown waits this long for them.
GRACEFUL_SHUTDOWN_SECONDS = 2


def max_connections() -> int:
    """Open connections allowed: 256, or fewer when the file-descriptor limit is low."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 256
    # Leave room for the processes' pipes and pidfds (up to 4 descriptors each).
    return max(8, min(256, soft // 4))


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request-head deadline and a cap on open connections."""

    header_timeout = HEADER_TIMEOUT
    connection_cap = 256

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._made_at = time.monotonic()
        self._head_deadline: asyncio.TimerHandle | None = None
        self._arm_head_deadline()
        open_ = [
            c for c in self.connections if isinstance(c, GuardedH11Protocol) and not c.transport.is_closing()
        ]
        if len(open_) > self.connection_cap:
            waiting = [c for c in open_ if c is not self and c._awaiting_head()]
            victim = min(waiting, key=lambda c: c._made_at, default=self)
            victim._close()

    def _awaiting_head(self) -> bool:
        return self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete)

    def _arm_head_deadline(self) -> None:
        self._disarm_head_deadline()
        self._head_deadline = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _disarm_head_deadline(self) -> None:
        deadline = getattr(self, "_head_deadline", None)
        if deadline is not None:
            deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self._awaiting_head():
            self._close()

    def _close(self) -> None:
        self._disarm_head_deadline()
        if not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm_head_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self._awaiting_head() and self._head_deadline is None:
            self._arm_head_deadline()

    def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio.Protocol allows True
        """The client half-closed (``shutdown(SHUT_WR)``) after a request with a body: with that
        request read whole and the answer still to come, it is served (a run's process is not
        killed for it), then the connection closes. Otherwise it closes now, as uvicorn does.

        A half-close and a full close look the same until the answer is written: a client that
        went away is noticed at the next write (a run stream pings every RUN_PING_SECONDS).
        """
        cycle = self.cycle
        if (
            cycle is not None
            and not cycle.response_complete
            and self.conn.their_state is h11.DONE
            and cycle.scope["method"] not in ("GET", "HEAD")
        ):
            cycle.keep_alive = False
            return True  # keep our side open for the answer
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)


class PatientWSProtocol(WSProtocol):
    """uvicorn's websocket protocol, whose keepalive does not drop a client that is only slow.

    A ping the server cannot deliver (its own send buffer still holds output the client has
    not read: the client is applying backpressure, like a reader that paused) cannot be
    answered; the deadline is re-armed instead of closing with 1011. A client that reads
    nothing at all is closed by the PTY's own policy (1008), as the Tensorlake daemon does.
    """

    def keepalive_timeout(self) -> None:
        transport = self.transport
        if not transport.is_closing() and transport.get_write_buffer_size() > 0 and self.ping_timeout:
            self.pong_timer = self.loop.call_later(self.ping_timeout, self.keepalive_timeout)
            return
        super().keepalive_timeout()


def make_config(
    app: Any,
    *,
    lifespan: Literal["on", "off"] = "on",
    log_requests: bool = False,
    log_config: Any = None,
    header_timeout: float = HEADER_TIMEOUT,
    connection_cap: int | None = None,
    ws_ping_interval: float = 20.0,
    ws_ping_timeout: float = 20.0,
) -> uvicorn.Config:
    """A uvicorn config with the guarded protocol; quiet (warnings only) unless ``log_requests``."""
    cap = max_connections() if connection_cap is None else connection_cap
    protocol = type(
        "GuardedH11Protocol", (GuardedH11Protocol,), {"connection_cap": cap, "header_timeout": header_timeout}
    )
    return uvicorn.Config(
        app,
        http=protocol,
        ws=PatientWSProtocol,  # the PTY websocket (wsproto)
        ws_ping_interval=ws_ping_interval,
        ws_ping_timeout=ws_ping_timeout,
        lifespan=lifespan,
        log_level="info" if log_requests else "warning",
        access_log=log_requests,
        timeout_keep_alive=KEEP_ALIVE_TIMEOUT,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        limit_concurrency=cap + 16,  # the cap above keeps connections below it; this bounds tasks
        # Also how many connections asyncio accepts per wake-up: kept small next to the cap, so
        # that accepting never outruns closing idle ones into "Too many open files". (`Server`
        # then sets the kernel's queue back to LISTEN_BACKLOG.)
        backlog=max(4, cap // 4),
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        log_config=log_config,
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (IPv6 when ``host`` is an IPv6 address)."""
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted sockets only when it sees it
    # (without it, a response written in two parts waits ~40 ms for a delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


class Server(uvicorn.Server):
    """uvicorn's server, with the listening sockets' kernel queue at LISTEN_BACKLOG.

    asyncio uses ``backlog`` both for ``listen()`` and for how many connections it accepts per
    wake-up; the config keeps the latter small, and this restores a deep queue for bursts.

    ``before_shutdown`` runs when it starts to stop, before uvicorn waits (up to
    GRACEFUL_SHUTDOWN_SECONDS) for open responses: the app ends its endless ones there.
    """

    def __init__(
        self, config: uvicorn.Config, before_shutdown: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        super().__init__(config)
        self.before_shutdown = before_shutdown

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.before_shutdown is not None:
            try:
                await self.before_shutdown()
            except Exception:  # stopping goes on: the lifespan's shutdown kills what is left
                logging.getLogger("uvicorn.error").exception("before_shutdown failed")
        await super().shutdown(sockets)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        for sock in sockets or []:
            sock.listen(LISTEN_BACKLOG)


class ServerThread:
    """uvicorn serving ``config`` on ``sock`` in a daemon thread: `start` waits until it serves."""

    def __init__(
        self,
        config: uvicorn.Config,
        sock: socket.socket,
        name: str = "uvicorn",
        before_shutdown: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.server = Server(config, before_shutdown)
        self.sock = sock
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, name=name, daemon=True
        )

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop(timeout)
                raise RuntimeError("the server did not start")
            time.sleep(0.01)

    def stop(self, timeout: float = 15.0) -> None:
        """Ask it to exit and wait; raises RuntimeError when it did not stop in time."""
        self.server.should_exit = True
        if self._thread.ident is not None:
            self._thread.join(timeout)
        with contextlib.suppress(OSError):
            self.sock.close()
        if self._thread.is_alive():
            raise RuntimeError("the server did not stop in time")
