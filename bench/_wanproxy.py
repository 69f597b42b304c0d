"""A user-space TCP proxy that adds network latency: ``python -m bench._wanproxy UPSTREAM_PORT D1 D2 ...``.

No kernel settings (no ``tc netem``): one asyncio process relays bytes between the client
and the server and holds every piece for a fixed one-way delay in each direction, so a
request and its answer see a round trip of ``2 x delay``. One listener per delay (given in
milliseconds of round-trip time); it prints ``{"ports": {rtt_ms: port}}`` on its first line.

* Order is preserved: each direction of each connection is a FIFO; a piece is released
  at ``arrival + delay`` (later when a bandwidth cap is set), never before the one ahead.
* Optional bandwidth cap per direction (``--mbit``): a piece leaves the "wire" only once
  the pieces before it have, at the capped rate, then flies for the one-way delay.
* Back-pressure: a direction holding more than ``--window`` bytes (queued + unsent) stops
  reading its source, as a TCP window would, so memory stays bounded.
* EOF and close are delayed like data (a half-close is passed on as a half-close).

Commands on stdin, one per line, answered with one JSON line on stdout:
``stats`` (connections accepted per listener, bytes each way, and this process's own CPU
seconds since the last ``reset``) and ``reset``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import resource
import socket
import sys
import time
from typing import Any

__all__ = ["main"]

_EOF = object()


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.connections: collections.Counter[int] = collections.Counter()
        self.up = 0  # client -> server bytes
        self.down = 0
        self.cpu0 = _cpu()
        self.t0 = time.perf_counter()

    def as_dict(self) -> dict[str, Any]:
        return {
            "connections": {str(k): v for k, v in self.connections.items()},
            "bytes_up": self.up,
            "bytes_down": self.down,
            "cpu_secs": _cpu() - self.cpu0,
            "secs": time.perf_counter() - self.t0,
        }


class _Direction:
    """One direction of one connection: bytes read from ``src`` go to ``dst`` ``delay`` later."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        delay: float,
        bytes_per_sec: float | None,
        window: int,
        count: Any,
    ) -> None:
        self.loop = loop
        self.delay = delay
        self.rate = bytes_per_sec
        self.window = window
        self.count = count
        self.queue: collections.deque[tuple[float, Any]] = collections.deque()
        self.queued = 0
        self.wire_free = 0.0  # when the capped link has sent everything queued so far
        self.timer: asyncio.TimerHandle | None = None
        self.src: asyncio.Transport | None = None
        self.dst: asyncio.Transport | None = None
        self.src_paused = False
        self.dst_blocked = False  # dst's protocol asked us to stop writing

    def push(self, item: Any) -> None:
        now = self.loop.time()
        size = len(item) if isinstance(item, bytes) else 0
        if self.rate:
            self.wire_free = max(now, self.wire_free) + size / self.rate
            release = self.wire_free + self.delay
        else:
            release = now + self.delay
        if self.queue and release < self.queue[-1][0]:
            release = self.queue[-1][0]
        self.queue.append((release, item))
        self.queued += size
        if size:
            self.count(size)
        self._pace()
        if self.timer is None:
            self._flush()

    def _flush(self) -> None:
        self.timer = None
        if self.dst is None:
            # Upstream not connected yet: flushed when it is.
            return
        now = self.loop.time()
        q = self.queue
        while q and q[0][0] <= now + 0.0002:
            _, item = q.popleft()
            if isinstance(item, bytes):
                self.queued -= len(item)
            if self.dst.is_closing():
                continue  # the other end is gone: what was in flight to it is dropped, as on a wire
            if item is _EOF:
                try:
                    self.dst.write_eof()
                except OSError:  # the peer reset meanwhile
                    self.dst.abort()
            elif item is None:
                self.dst.close()
            else:
                self.dst.write(item)
        if q:
            self.timer = self.loop.call_at(q[0][0], self._flush)
        self._pace()

    def _pace(self) -> None:
        """Stop or resume reading the source to keep queued + unsent bytes under the window."""
        if self.src is None:
            return
        unsent = self.dst.get_write_buffer_size() if self.dst is not None else 0
        over = self.queued + unsent > self.window or self.dst_blocked
        if over and not self.src_paused:
            self.src_paused = True
            self.src.pause_reading()
        elif not over and self.src_paused:
            self.src_paused = False
            if not self.src.is_closing():
                self.src.resume_reading()


class _Side(asyncio.Protocol):
    """The protocol on one socket: feeds ``out`` (data read here) and is written by ``into``."""

    def __init__(self, out: _Direction, into: _Direction) -> None:
        self.out = out  # what this socket reads goes here
        self.into = into  # what this socket writes comes from here

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.out.src = transport
        self.into.dst = transport
        self.into._flush()

    def data_received(self, data: bytes) -> None:
        self.out.push(data)

    def eof_received(self) -> bool:
        self.out.push(_EOF)
        return True  # keep our side open for writing until the peer's close arrives

    def connection_lost(self, exc: Exception | None) -> None:
        self.out.push(None)

    def pause_writing(self) -> None:
        self.into.dst_blocked = True
        self.into._pace()

    def resume_writing(self) -> None:
        self.into.dst_blocked = False
        self.into._pace()


class Proxy:
    def __init__(self, upstream: tuple[str, int], bytes_per_sec: float | None, window: int) -> None:
        self.upstream = upstream
        self.rate = bytes_per_sec
        self.window = window
        self.stats = Stats()
        self.tasks: set[asyncio.Task[None]] = set()

    async def listen(self, rtt_ms: int) -> int:
        loop = asyncio.get_running_loop()
        one_way = rtt_ms / 2000

        def up(n: int) -> None:
            self.stats.up += n

        def down(n: int) -> None:
            self.stats.down += n

        def accept() -> asyncio.Protocol:
            self.stats.connections[rtt_ms] += 1
            c2s = _Direction(loop, one_way, self.rate, self.window, up)
            s2c = _Direction(loop, one_way, self.rate, self.window, down)
            client_side = _Side(c2s, s2c)

            async def connect() -> None:
                try:
                    await loop.create_connection(lambda: _Side(s2c, c2s), *self.upstream)
                except OSError:
                    if s2c.dst is not None:
                        s2c.dst.close()

            task = loop.create_task(connect())
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            return client_side

        server = await loop.create_server(accept, "127.0.0.1", 0, backlog=1024)
        port: int = server.sockets[0].getsockname()[1]
        return port

    async def commands(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            cmd = line.decode().strip()
            if cmd == "reset":
                self.stats.reset()
                out: dict[str, Any] = {"ok": True}
            elif cmd == "stats":
                out = self.stats.as_dict()
            else:
                out = {"error": f"unknown command {cmd!r}"}
            print(json.dumps(out), flush=True)


async def _main(argv: list[str]) -> None:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bench._wanproxy")
    ap.add_argument("upstream_port", type=int)
    ap.add_argument("rtts", type=int, nargs="+", help="round-trip times to add, in ms (one listener each)")
    ap.add_argument("--mbit", type=float, default=None, help="bandwidth cap per direction, Mbit/s")
    ap.add_argument("--window", type=int, default=16 * 1024 * 1024, help="bytes in flight per direction")
    args = ap.parse_args(argv)
    rate = args.mbit * 1e6 / 8 if args.mbit else None
    proxy = Proxy(("127.0.0.1", args.upstream_port), rate, args.window)
    ports = {rtt: await proxy.listen(rtt) for rtt in args.rtts}
    print(json.dumps({"ports": ports}), flush=True)
    await proxy.commands()


def main() -> None:
    asyncio.run(_main(sys.argv[1:]))


if __name__ == "__main__":
    main()
