"""One client, one measurement, in its own process: ``python -m bench._worker '<json spec>'``.

Every client is measured in a fresh interpreter so that one client's imports, threads,
caches and heap never weigh on another's figures, and so that the peak RSS read at the end
(``VmHWM``) is that client's alone. The worker prints one JSON object on its last line:
``{"ok": true, ...figures}`` or ``{"ok": false, "why": "..."}`` when a piece it needs is
missing (the caller turns that into a "not available" row).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["CLIENTS", "Unavailable", "main"]

PATH = "/api/v1/processes/{pid}/stdin"


class Unavailable(Exception):
    """A piece the measurement needs is missing; the message says which."""


def peak_rss_kib() -> int:
    """This process's peak resident set size (``VmHWM``), in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


# --- clients: each builder returns a one-argument write function (bytes -> None) -----------------


def _shim_client(spec: dict[str, Any]) -> Any:
    """``sandbox_client`` defaults: the engine's own transport."""
    from tensorlake_sandbox import sandbox_client

    return sandbox_client(base_url=spec["url"], api_key=spec["token"])


def _pool_limits() -> Any:
    """The engine's pool limits, for httpx's own transport: the two candidates differ only in transport.

    The engine's value when it is where it was (``tensorlake_sandbox._transports._factory.LIMITS``),
    else the bench's copy of it as it was when this was written.
    """
    import httpx

    try:
        from tensorlake_sandbox._transports._factory import LIMITS
    except ImportError:
        return httpx.Limits(max_connections=None, max_keepalive_connections=100, keepalive_expiry=4.0)
    return LIMITS


def _httpx_transport_client(spec: dict[str, Any], *, is_async: bool) -> Any:
    """The engine's client on httpx's own transport (httpcore) with the engine's pool limits: the
    candidate the engine's transport was chosen over.

    `sandbox_client` refuses ``httpx_args["transport"]`` (one transport for every request), so
    the bench builds this one with the generated `AuthenticatedClient`: same base URL, key and
    redirect rule as `sandbox_client`'s defaults, and the engine's own timeout and response hooks
    (read from its httpx client's public ``timeout`` and ``event_hooks``: the hooks raise on a
    non-2xx answer and tell a stdin write that its bytes arrived), so that only the transport
    differs.
    """
    import httpx

    from tensorlake_api_client.client import AuthenticatedClient

    engine = _shim_client(spec)
    ours = engine.get_async_httpx_client() if is_async else engine.get_httpx_client()

    def small_body(kwargs: dict[str, Any]) -> dict[str, Any]:
        # The generated functions pass a file body (`io.BytesIO`); the engine's client class sends
        # a small one as bytes, and httpx.AsyncClient cannot send a sync file at all.
        if isinstance(kwargs.get("content"), io.BytesIO):
            kwargs["content"] = kwargs["content"].read()
        return kwargs

    class Client(httpx.Client):
        def build_request(self, method: str, url: Any, **kwargs: Any) -> httpx.Request:
            return super().build_request(method, url, **small_body(kwargs))

    class AsyncClient(httpx.AsyncClient):
        def build_request(self, method: str, url: Any, **kwargs: Any) -> httpx.Request:
            return super().build_request(method, url, **small_body(kwargs))

    cls = httpx.AsyncHTTPTransport if is_async else httpx.HTTPTransport
    client = AuthenticatedClient(
        base_url=spec["url"],
        token=spec["token"],
        timeout=ours.timeout,
        follow_redirects=False,
        httpx_args={"transport": cls(limits=_pool_limits()), "event_hooks": ours.event_hooks},
    )
    if is_async:
        client.set_async_httpx_client(AsyncClient(**client.httpx_client_kwargs()))
    else:
        client.set_httpx_client(Client(**client.httpx_client_kwargs()))
    return client


def _shim_client_on_httpx_async(spec: dict[str, Any]) -> Any:
    """A `SandboxClient` (which `awrite_stdin` requires) whose async calls go through httpx's own
    transport: the client from `_httpx_transport_client`, handed over with the generated client's
    public ``set_async_httpx_client``."""
    client = _shim_client(spec)
    httpx_client = _httpx_transport_client(spec, is_async=True).get_async_httpx_client()
    try:
        client.set_async_httpx_client(httpx_client)
    except (AttributeError, TypeError, ValueError) as e:
        raise Unavailable(f"a SandboxClient no longer takes an httpx client of its own: {e}") from e
    return client


def _generated_writer(client: Any, pid: int) -> Callable[[bytes], None]:
    from tensorlake_api_client.api.sandbox_processes import sandbox_process_stdin
    from tensorlake_api_client.types import File

    client.get_httpx_client()  # built now, not in the first timed call (SSL context, pool)

    def write(b: bytes) -> None:
        r = sandbox_process_stdin.sync_detailed(pid, client=client, body=File(payload=io.BytesIO(b)))
        if r.status_code != 204:
            raise RuntimeError(f"HTTP {r.status_code}")

    return write


def w_generated(spec: dict[str, Any]) -> Callable[[bytes], None]:
    """(a) generated ``sync_detailed`` with the shim's client."""
    return _generated_writer(_shim_client(spec), spec["pid"])


def w_generated_httpx(spec: dict[str, Any]) -> Callable[[bytes], None]:
    """(a) on httpx's own transport instead of the engine's."""
    return _generated_writer(_httpx_transport_client(spec, is_async=False), spec["pid"])


def w_generated_plain(spec: dict[str, Any]) -> Callable[[bytes], None]:
    """Generated ``sync_detailed`` with the generated ``AuthenticatedClient`` (no shim): diagnosis."""
    from tensorlake_api_client.client import AuthenticatedClient

    return _generated_writer(AuthenticatedClient(base_url=spec["url"], token=spec["token"]), spec["pid"])


def _httpx_writer(transport: Any = None, *, spec: dict[str, Any]) -> Callable[[bytes], None]:
    import httpx

    kwargs: dict[str, Any] = {"transport": transport} if transport is not None else {}
    client = httpx.Client(
        base_url=spec["url"], headers={"Authorization": f"Bearer {spec['token']}"}, **kwargs
    )
    url = PATH.format(pid=spec["pid"])
    headers = {"Content-Type": "application/octet-stream"}

    def write(b: bytes) -> None:
        r = client.post(url, content=b, headers=headers)
        if r.status_code != 204:
            raise RuntimeError(f"HTTP {r.status_code}")

    return write


def w_httpx(spec: dict[str, Any]) -> Callable[[bytes], None]:
    """(b) a bare ``httpx.Client.post``."""
    return _httpx_writer(spec=spec)


def w_sdk(spec: dict[str, Any]) -> Callable[[bytes], None]:
    """(c) Tensorlake's official SDK, ``Sandbox.write_stdin``, unchanged."""
    try:
        from tensorlake.sandbox import Sandbox  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError as e:
        raise Unavailable(f"the official SDK is not importable: {e}") from e
    sb = Sandbox(spec.get("sandbox_id", "bench"), proxy_url=spec["url"], api_key=spec["token"])
    pid = spec["pid"]

    def write(b: bytes) -> None:
        sb.write_stdin(pid, b)

    return write


def _our_write_stdin() -> Any:
    try:
        import tensorlake_sandbox
    except ImportError as e:
        raise Unavailable(f"tensorlake_sandbox is not importable: {e}") from e
    fn = getattr(tensorlake_sandbox, "write_stdin", None)
    if fn is None:
        raise Unavailable("tensorlake_sandbox.write_stdin does not exist yet (issue 4)")
    return fn


def w_write_stdin(spec: dict[str, Any]) -> Callable[[bytes], None]:
    """(d) ``tensorlake_sandbox.write_stdin``."""
    fn = _our_write_stdin()
    client = _shim_client(spec)
    pid = spec["pid"]

    def write(b: bytes) -> None:
        fn(client, pid, b)

    return write


CLIENTS: dict[str, Callable[[dict[str, Any]], Callable[[bytes], None]]] = {
    "generated": w_generated,
    "httpx": w_httpx,
    "sdk": w_sdk,
    "write_stdin": w_write_stdin,
    "generated-plain": w_generated_plain,
    "generated+httpx": w_generated_httpx,
}


# --- measurements --------------------------------------------------------------------------------


def small(spec: dict[str, Any]) -> dict[str, Any]:
    """``n`` writes of ``size`` bytes after ``warmup`` untimed ones: wall and CPU time per call."""
    write = CLIENTS[spec["client"]](spec)
    payload = b"x" * spec["size"]
    for _ in range(spec["warmup"]):
        write(payload)
    n = spec["n"]
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(n):
        write(payload)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"wall_us": wall / n * 1e6, "cpu_us": cpu / n * 1e6, "calls": _calls_per_write(write, payload)}


def _calls_per_write(write: Callable[[bytes], None], payload: bytes, n: int = 100) -> float:
    """Python and C function calls per write, counted with ``sys.setprofile``: a figure that
    machine load cannot disturb (it says how much work, not how long it took)."""
    count = 0

    def prof(frame: Any, event: str, arg: Any) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    sys.setprofile(prof)
    try:
        for _ in range(n):
            write(payload)
    finally:
        sys.setprofile(None)
    return count / n


def pair(spec: dict[str, Any]) -> dict[str, Any]:
    """Several clients in one process, alternating blocks of ``block`` writes: CPU per call each.

    Interleaving at a fine grain puts every client under the same machine load, so their
    ratio is far steadier than figures taken in separate processes at separate moments.
    """
    keys: list[str] = spec["clients"]
    writers = {k: CLIENTS[k]({**spec, "client": k}) for k in keys}
    payload = b"x" * spec["size"]
    for w in writers.values():
        for _ in range(spec["warmup"]):
            w(payload)
    cpu = dict.fromkeys(keys, 0.0)
    block, blocks = spec["block"], spec["blocks"]
    for _ in range(blocks):
        for k, w in writers.items():
            c0 = time.process_time()
            for _ in range(block):
                w(payload)
            cpu[k] += time.process_time() - c0
    return {"cpu_us": {k: v / (block * blocks) * 1e6 for k, v in cpu.items()}}


def bulk(spec: dict[str, Any]) -> dict[str, Any]:
    """Send the file at ``path`` to one process: seconds, bytes, requests and peak RSS."""
    path, pid, chunk = spec["path"], spec["pid"], spec["chunk"]
    client_name = spec["client"]
    size = os.path.getsize(path)
    requests = 0
    if client_name == "write_stdin":
        fn = _our_write_stdin()
        client = _shim_client(spec)
        client.get_httpx_client()  # built before timing, as the SDK's client is by Sandbox()
        t0, c0 = time.perf_counter(), time.process_time()
        with open(path, "rb") as f:
            sent = fn(client, pid, f, chunk_size=chunk)
        secs, cpu = time.perf_counter() - t0, time.process_time() - c0
        if isinstance(sent, int) and sent != size:
            raise RuntimeError(f"write_stdin reported {sent} bytes, expected {size}")
    elif client_name in ("sdk", "generated"):
        write = CLIENTS[client_name](spec)
        t0, c0 = time.perf_counter(), time.process_time()
        with open(path, "rb") as f:
            while block := f.read(chunk):
                write(block)
                requests += 1
        secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    else:
        raise Unavailable(f"no bulk client {client_name!r}")
    return {
        "secs": secs,
        "cpu_secs": cpu,
        "bytes": size,
        "requests": requests or None,
        "rss_kib": peak_rss_kib(),
    }


def lines(spec: dict[str, Any]) -> dict[str, Any]:
    """One request per line read from stdin (how the official SDK is used): seconds and requests."""
    write = CLIENTS[spec["client"]](spec)
    t0 = time.perf_counter()
    n = 0
    for line in sys.stdin.buffer:
        write(line)
        n += 1
    return {"secs": time.perf_counter() - t0, "requests": n}


def lines_write_stdin(spec: dict[str, Any]) -> dict[str, Any]:
    """The whole of stdin (a pipe) through ``write_stdin``: seconds."""
    fn = _our_write_stdin()
    client = _shim_client(spec)
    t0 = time.perf_counter()
    fn(client, spec["pid"], sys.stdin.buffer)
    return {"secs": time.perf_counter() - t0}


def fanout(spec: dict[str, Any]) -> dict[str, Any]:
    """``writes`` writes to each of ``pids``: sequential sync, or one task per process.

    One untimed write to every process first, so that client creation and connection set-up
    are not timed (the async modes open one connection per concurrent task).
    """
    pids: list[int] = spec["pids"]
    writes, payload, mode = spec["writes"], b"x" * spec["size"], spec["mode"]
    total = len(pids) * writes

    if mode == "sync-generated":
        from tensorlake_api_client.api.sandbox_processes import sandbox_process_stdin
        from tensorlake_api_client.types import File

        client = _shim_client(spec)

        def one_write(pid: int) -> None:
            r = sandbox_process_stdin.sync_detailed(
                pid, client=client, body=File(payload=io.BytesIO(payload))
            )
            if r.status_code != 204:
                raise RuntimeError(f"HTTP {r.status_code}")

        for pid in pids:
            one_write(pid)
        t0 = time.perf_counter()
        for _ in range(writes):
            for pid in pids:
                one_write(pid)
        return {"secs": time.perf_counter() - t0, "writes": total}

    async def run(make: Callable[[int], Coroutine[Any, Any, Any]]) -> float:
        async def one(pid: int, n: int) -> None:
            for _ in range(n):
                await make(pid)

        await asyncio.gather(*(one(p, 1) for p in pids))
        t0 = time.perf_counter()
        await asyncio.gather(*(one(p, writes) for p in pids))
        return time.perf_counter() - t0

    if mode.startswith("async-generated"):
        from tensorlake_api_client.api.sandbox_processes import sandbox_process_stdin
        from tensorlake_api_client.types import File

        client = _httpx_transport_client(spec, is_async=True) if "+httpx" in mode else _shim_client(spec)

        async def gen(pid: int) -> None:
            r = await sandbox_process_stdin.asyncio_detailed(
                pid, client=client, body=File(payload=io.BytesIO(payload))
            )
            if r.status_code != 204:
                raise RuntimeError(f"HTTP {r.status_code}")

        return {"secs": asyncio.run(run(gen)), "writes": total}
    if mode.startswith("awrite_stdin"):
        import tensorlake_sandbox

        afn = getattr(tensorlake_sandbox, "awrite_stdin", None)
        if afn is None:
            raise Unavailable("tensorlake_sandbox.awrite_stdin does not exist yet (issue 4)")
        client = _shim_client_on_httpx_async(spec) if "+httpx" in mode else _shim_client(spec)

        async def ours(pid: int) -> None:
            await afn(client, pid, payload)

        return {"secs": asyncio.run(run(ours)), "writes": total}
    if mode == "sdk-async":
        try:
            from tensorlake.sandbox import AsyncSandbox  # type: ignore[import-untyped,import-not-found,unused-ignore]
        except ImportError as e:
            raise Unavailable(f"the official SDK is not importable: {e}") from e

        async def main() -> float:
            sb = AsyncSandbox(spec.get("sandbox_id", "bench"), proxy_url=spec["url"], api_key=spec["token"])

            async def sdk(pid: int) -> None:
                await sb.write_stdin(pid, payload)

            try:
                return await run(sdk)
            finally:
                sb.close()

        return {"secs": asyncio.run(main()), "writes": total}
    raise Unavailable(f"no fan-out mode {mode!r}")


# --- WAN (through the latency proxy): every leg is one RTT, measured in this one process ------------


def _raw_post(sock: Any, head: bytes, body: bytes) -> None:
    """One POST on a kept-alive socket; returns once the (body-less) 204 has been read."""
    sock.sendall(head + body if len(body) < 65536 else head)
    if len(body) >= 65536:
        sock.sendall(body)
    buf = b""
    while b"\r\n\r\n" not in buf:
        got = sock.recv(65536)
        if not got:
            raise RuntimeError("the server closed the connection")
        buf += got
    status = buf.split(b" ", 2)[1]
    if status != b"204":
        raise RuntimeError(f"HTTP {status.decode()}: {buf[:200]!r}")


def wan_probe(spec: dict[str, Any]) -> dict[str, Any]:
    """A raw socket's round trip per leg: median seconds of a 16-byte and of a ``big``-byte POST.

    No HTTP library: what the link and the server take, with no client cost on top.
    """
    import socket

    out: dict[str, Any] = {}
    for leg in spec["legs"]:
        host, port = leg["url"].rsplit("//", 1)[1].split(":")
        sock = socket.create_connection((host, int(port)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        times: dict[str, list[float]] = {"small": [], "big": []}
        for name, size, n in (("small", 16, spec["n_small"]), ("big", spec["big"], spec["n_big"])):
            body = b"x" * size
            head = (
                f"POST {PATH.format(pid=leg['pid'])} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Authorization: Bearer {spec['token']}\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Length: {size}\r\n\r\n"
            ).encode()
            _raw_post(sock, head, body)  # warm-up
            for _ in range(n):
                t0 = time.perf_counter()
                _raw_post(sock, head, body)
                times[name].append(time.perf_counter() - t0)
        sock.close()
        out[str(leg["rtt"])] = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    return {"legs": out}


def wan_bulk(spec: dict[str, Any]) -> dict[str, Any]:
    """One client, one file per leg: seconds and client CPU for each."""
    name = spec["client"]
    out: dict[str, Any] = {}
    for leg in spec["legs"]:
        url, pid, path = leg["url"], leg["pid"], leg["path"]
        if name in ("defaults", "tuned", "old-default"):
            fn = _our_write_stdin()
            client = _shim_client({**spec, "url": url})
            client.get_httpx_client()
            kwargs = {"chunk_size": spec["chunk"]} if name == "tuned" else {}
            if name == "old-default":
                kwargs = {"chunk_size": 1 << 20}
            t0, c0 = time.perf_counter(), time.process_time()
            with open(path, "rb") as f:
                fn(client, pid, f, **kwargs)
            secs, cpu = time.perf_counter() - t0, time.process_time() - c0
            client.close()
        elif name == "sdk":
            write = CLIENTS["sdk"]({**spec, "url": url, "pid": pid})
            chunk = spec["chunk"]
            t0, c0 = time.perf_counter(), time.process_time()
            with open(path, "rb") as f:
                while block := f.read(chunk):
                    write(block)
            secs, cpu = time.perf_counter() - t0, time.process_time() - c0
        else:
            raise Unavailable(f"no WAN bulk client {name!r}")
        out[str(leg["rtt"])] = {"secs": secs, "cpu_secs": cpu}
    return {"legs": out, "rss_kib": peak_rss_kib()}


def wan_fanout(spec: dict[str, Any]) -> dict[str, Any]:
    """`fanout` once per leg (its own URL and processes), in this one process."""
    out: dict[str, Any] = {}
    for leg in spec["legs"]:
        out[str(leg["rtt"])] = fanout({**spec, "url": leg["url"], "pids": leg["pids"]})
    return {"legs": out}


def read_lines(spec: dict[str, Any]) -> dict[str, Any]:
    """``seq n`` in the sandbox, every line read back by one client; seconds, and the count checked."""
    n, name = spec["n"], spec["client"]
    expected_last = str(n)
    t0 = time.perf_counter()
    if name in ("run", "start"):
        from tensorlake_sandbox import run, start

        client = _shim_client(spec)
        if name == "run":
            out = run(client, ["seq", str(n)]).stdout
            count, last = out.count("\n"), out.rstrip("\n").rsplit("\n", 1)[-1]
        else:
            count, last = 0, ""
            with start(client, ["seq", str(n)], stdin=False) as p:
                for line in p.stdout:
                    count += 1
                    last = line
                p.wait()
        client.close()
    elif name == "sdk":
        try:
            from tensorlake.sandbox import Sandbox  # type: ignore[import-untyped,import-not-found,unused-ignore]
        except ImportError as e:
            raise Unavailable(f"the official SDK is not importable: {e}") from e
        sb = Sandbox(spec.get("sandbox_id", "bench"), proxy_url=spec["url"], api_key=spec["token"])
        proc = sb.start_process("seq", [str(n)])
        count, last = 0, ""
        for event in sb.follow_stdout(proc.pid):
            count += 1
            last = event.line
    else:
        raise Unavailable(f"no line reader {name!r}")
    secs = time.perf_counter() - t0
    if count != n or str(last).strip() != expected_last:
        raise Unavailable(f"read {count:,} lines (last {str(last)[:20]!r}), expected {n:,}")
    return {"secs": secs}


KINDS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "read_lines": read_lines,
    "small": small,
    "pair": pair,
    "bulk": bulk,
    "lines": lines,
    "lines_write_stdin": lines_write_stdin,
    "fanout": fanout,
    "wan_probe": wan_probe,
    "wan_bulk": wan_bulk,
    "wan_fanout": wan_fanout,
}


def main() -> None:
    spec = json.loads(sys.argv[1])
    try:
        out = {"ok": True, **KINDS[spec["kind"]](spec)}
    except Unavailable as e:
        out = {"ok": False, "why": str(e)}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
