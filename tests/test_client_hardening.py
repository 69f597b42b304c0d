"""Issue #11, client side: each finding reproduced against real servers on 127.0.0.1, on every
transport where it applies (the engine's sync and async transports).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tensorlake_api_client.api.sandbox_processes import sandbox_process_close_stdin, sandbox_process_get
from tensorlake_sandbox import (
    DeliveryUnknownError,
    RetryPolicy,
    SandboxClient,
    SandboxConnectionError,
    SandboxError,
    SandboxTimeoutError,
    StdinNotWritableError,
    awrite_stdin,
    sandbox_client,
    write_stdin,
)
from tensorlake_sandbox._async._stdin import aclose_stdin, astdin_writer
from tensorlake_sandbox._sync._stdin import close_stdin
from tests.closing import close_after_test
from tests.servers.fault import OK, BodyOn204, Slow

ROOT = Path(__file__).resolve().parent.parent
PID = 7
MIB = 1 << 20
TRANSPORTS = ["sync", "async"]
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02)


def client_for(url: str, transport: str, timeout: float = 10.0) -> SandboxClient:
    client = sandbox_client(base_url=url, api_key="secret-key", timeout=timeout)
    close_after_test(client)
    return client


def call(
    client: SandboxClient, transport: str, sync: Callable[..., Any], make_async: Callable[..., Any]
) -> Any:
    """Run ``sync(client)`` on the sync path, else ``make_async(client)`` in a fresh event loop."""
    if transport == "sync":
        return sync(client)

    async def main() -> Any:
        try:
            return await make_async(client)
        finally:
            await client.aclose()

    return asyncio.run(main())


def generated(client: SandboxClient, transport: str, module: Any, *args: Any) -> Any:
    """A generated operation's ``sync`` on the sync path, else its ``asyncio``."""
    return call(
        client, transport, lambda c: module.sync(*args, client=c), lambda c: module.asyncio(*args, client=c)
    )


def write(client: SandboxClient, transport: str, data: bytes, **kwargs: Any) -> int:
    return call(  # type: ignore[no-any-return]
        client,
        transport,
        lambda c: write_stdin(c, PID, data, **kwargs),
        lambda c: awrite_stdin(c, PID, data, **kwargs),
    )


# -- 1: a loopback sandbox is never reached through a proxy ------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_loopback_is_never_sent_to_an_environment_proxy(make_server, recorder, monkeypatch, transport):
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.setenv(name, recorder.url)  # a real server that records whatever reaches it
    server = make_server()
    client = client_for(server.base_url, transport)
    assert write(client, transport, b"to the sandbox, not the proxy") == 29
    generated(client, transport, sandbox_process_close_stdin, PID)
    assert server.closes == 1
    assert bytes(server.accepted) == b"to the sandbox, not the proxy"
    assert recorder.requests == []


# -- 2: confirmed bytes are counted whatever exception follows ------------------------------

CTRL_C = textwrap.dedent(
    """
    import os, signal, sys, threading
    from tensorlake_sandbox import StdinWriter, sandbox_client
    from tests.servers.fault import OK, FaultServer, Slow

    MIB = 1 << 20
    server = FaultServer(plan=[OK, Slow(60)], keep_bodies=False).start()
    client = sandbox_client(base_url=server.base_url, api_key="k", timeout=120)

    def interrupt_when_second_request_arrived():
        server.wait_accepted(2 * MIB, timeout=60)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_second_request_arrived, daemon=True).start()
    w = StdinWriter(client, 1, chunk_size=MIB)
    try:
        with w:
            w.write(os.urandom(3 * MIB))
    except KeyboardInterrupt as exc:
        print("counted", w.bytes_delivered, getattr(exc, "bytes_delivered", None))
        for note in getattr(exc, "__notes__", []):
            print("note", note)
    sys.stdout.flush()
    os._exit(0)
    """
)


def _figures(note: str) -> list[int]:
    return [int(word) for word in note.replace("(", " ").split() if word.isdigit()]


def test_ctrl_c_after_a_confirmed_request_keeps_its_exact_count():
    out = subprocess.run(
        [sys.executable, "-c", CTRL_C], capture_output=True, text=True, timeout=120, cwd=ROOT
    ).stdout
    lines = out.splitlines()
    assert lines[0] == f"counted {MIB} {MIB}", out
    notes = [line for line in lines if line.startswith("note")]
    assert len(notes) >= 2, out  # the write's own note, and the writer's "left open" note
    # Every figure of delivered bytes in every note is the same exact one.
    assert all(MIB in _figures(n) and 0 not in _figures(n) for n in notes), out


@pytest.mark.parametrize("transport", ["async"])
def test_timeout_cancellation_after_a_confirmed_request_keeps_its_exact_count(make_server, transport):
    server = make_server(plan=[OK, Slow(60)], keep_bodies=False)
    client = client_for(server.base_url, transport, timeout=120)

    async def main() -> tuple[int, BaseException]:
        w = astdin_writer(client, PID, chunk_size=MIB)
        loop = asyncio.get_running_loop()
        try:
            with pytest.raises(TimeoutError) as info:
                # The second request is held by the server: then the timeout cancels the write
                # (wait_for's timeout is this one: asyncio.timeout since Python 3.12).
                async with asyncio.timeout(None) as timeout:
                    held = loop.run_in_executor(None, server.wait_accepted, 2 * MIB, 60)
                    held.add_done_callback(lambda _: timeout.reschedule(loop.time()))
                    await w.write(os.urandom(3 * MIB))
        finally:
            await client.aclose()
        return w.bytes_delivered, info.value

    delivered, error = asyncio.run(main())
    assert server.accepted_count == 2 * MIB  # the held request arrived, unconfirmed
    assert delivered == MIB
    cancelled = error.__context__
    assert cancelled is not None and getattr(cancelled, "bytes_delivered", None) == MIB
    assert any(MIB in _figures(n) for n in getattr(cancelled, "__notes__", []))


# -- 3: a 204 with a body breaks framing: the write is unknown, never a silent success ----------


@pytest.mark.parametrize(
    ("body_after", "chunked"),
    [(0.0, False), (0.3, False), (0.0, True)],
    ids=["one-packet", "body-later", "chunked"],
)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_204_with_a_body_is_delivery_unknown_and_the_connection_is_dropped(
    make_server, transport, body_after, chunked
):
    server = make_server(plan=[OK, BodyOn204(body_after, chunked)])
    client = client_for(server.base_url, transport)
    data = os.urandom(3 * 1000)

    def both(first: Any, second: Any) -> tuple[BaseException | None, int]:
        try:
            first()
        except DeliveryUnknownError as exc:
            error: BaseException | None = exc
        else:
            error = None
        assert server.wait_bodies_after_204(1)  # whatever the old connection still receives has arrived
        return error, second()

    async def aboth() -> tuple[BaseException | None, int]:
        try:
            await awrite_stdin(client, PID, data, chunk_size=1000, retry=FAST)
        except DeliveryUnknownError as exc:
            error: BaseException | None = exc
        else:
            error = None
        assert await asyncio.to_thread(server.wait_bodies_after_204, 1)
        # Same event loop, same connection pool: the next write must not reuse the broken one.
        return error, await awrite_stdin(client, PID, b"next")

    error, written = call(
        client,
        transport,
        lambda c: both(
            lambda: write_stdin(c, PID, data, chunk_size=1000, retry=FAST),
            lambda: write_stdin(c, PID, b"next"),
        ),
        lambda c: aboth(),
    )
    assert isinstance(error, DeliveryUnknownError), "a 204 with a body was taken for a success"
    assert (error.bytes_delivered, error.request_bytes) == (1000, 1000)
    assert isinstance(error.__cause__, SandboxConnectionError)
    # The next write went on a fresh connection and was answered by the server itself.
    assert written == 4
    assert bytes(server.accepted) == data[:2000] + b"next"
    assert [r.size for r in server.stdin_requests] == [1000, 1000, 4]


# -- 4: one error surface ------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_generated_call_raises_sandbox_connection_error_not_sent(transport, closed_port):
    client = client_for(f"http://127.0.0.1:{closed_port}", transport)
    with pytest.raises(SandboxConnectionError) as info:
        generated(client, transport, sandbox_process_get, PID)
    err = info.value
    assert isinstance(err, SandboxError)
    assert err.may_have_been_sent is False
    assert type(err.__cause__) is httpx.ConnectError


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_generated_call_timeout_is_sandbox_timeout_error_that_may_have_been_sent(make_server, transport):
    server = make_server(close_plan=[Slow(10)])
    client = client_for(server.base_url, transport, timeout=0.5)
    with pytest.raises(SandboxTimeoutError) as info:
        generated(client, transport, sandbox_process_close_stdin, PID)
    assert type(info.value.__cause__) is httpx.ReadTimeout
    assert info.value.may_have_been_sent is True


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_close_stdin_after_connection_failures_raises_a_sandbox_error(transport, closed_port):
    client = client_for(f"http://127.0.0.1:{closed_port}", transport)
    with pytest.raises(SandboxConnectionError) as info:
        call(
            client,
            transport,
            lambda c: close_stdin(c, PID, retry=FAST),
            lambda c: aclose_stdin(c, PID, retry=FAST),
        )
    assert info.value.may_have_been_sent is False


# -- 5: close_stdin is bounded by the caller's timeout, and not retried when unknown -----------


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_close_stdin_never_retries_when_the_close_may_have_arrived(make_server, transport):
    server = make_server(close_plan=[Slow(30), Slow(30), Slow(30)])
    client = client_for(server.base_url, transport)
    started = time.monotonic()
    with pytest.raises(DeliveryUnknownError):
        call(
            client,
            transport,
            lambda c: close_stdin(c, PID, timeout=1.0),
            lambda c: aclose_stdin(c, PID, timeout=1.0),
        )
    elapsed = time.monotonic() - started
    assert len([r for r in server.requests if r.path.endswith("/stdin/close")]) == 1
    assert elapsed < 10, elapsed  # about 1 s; generous for a loaded machine


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_close_stdin_retries_stop_at_the_callers_timeout(transport, closed_port):
    client = client_for(f"http://127.0.0.1:{closed_port}", transport)
    patient = RetryPolicy(attempts=1000, base_delay=0.5, max_delay=0.5)
    started = time.monotonic()
    with pytest.raises(SandboxConnectionError) as info:
        call(
            client,
            transport,
            lambda c: close_stdin(c, PID, timeout=1.5, retry=patient),
            lambda c: aclose_stdin(c, PID, timeout=1.5, retry=patient),
        )
    elapsed = time.monotonic() - started
    assert 0.5 < elapsed < 1.5 + 3, elapsed  # it did retry, and stopped near the budget
    assert any("1.5" in n for n in info.value.__notes__)


# -- 6: a refused request may have been partly written ---------------------------------------


READ_THEN_CLOSE = (
    "import os, time\nn = 0\nwhile n < 1_500_000:\n    n += len(os.read(0, 1_500_000 - n))\n"
    "os.close(0)\ntime.sleep(30)"
)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_refused_request_partly_written_says_so(start_process, local_sandbox, transport):
    proc = start_process(sys.executable, "-c", READ_THEN_CLOSE, stdin="pipe", stdout="discard")
    client = sandbox_client(base_url=local_sandbox.base_url, api_key=local_sandbox.token)
    close_after_test(client)
    data = os.urandom(3 * MIB)
    with pytest.raises(StdinNotWritableError) as info:
        call(
            client,
            transport,
            lambda c: write_stdin(c, proc.pid, data, chunk_size=MIB),
            lambda c: awrite_stdin(c, proc.pid, data, chunk_size=MIB),
        )
    err = info.value
    # The first request was confirmed; the process read part of the second, then closed stdin.
    assert (err.bytes_delivered, err.request_bytes) == (MIB, MIB)
    assert err.request_partly_written is True


# -- 7: httpx_args cannot replace what keeps the key safe -------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("base_url", "http://127.0.0.1:1"),
        ("auth", ("user", "pw")),
        ("follow_redirects", True),
        ("follow_redirects", False),
    ],
)
def test_httpx_args_cannot_replace_base_url_auth_or_redirects(key, value):
    with pytest.raises(ValueError, match=rf"httpx_args\[{key!r}\]") as info:
        sandbox_client(base_url="http://127.0.0.1:8500", api_key="secret-key", httpx_args={key: value})
    assert "secret-key" not in str(info.value)


def test_user_event_hooks_run_after_the_error_mapping(recorder):
    seen: list[int] = []
    client = sandbox_client(
        base_url=recorder.url,
        api_key="k",
        httpx_args={"event_hooks": {"response": [lambda r: seen.append(r.status_code)]}},
    )
    close_after_test(client)
    recorder.reply(404, b'{"error": "no such process"}')
    with pytest.raises(SandboxError):
        sandbox_process_get.sync(PID, client=client)
    assert seen == []  # the typed error was raised first; the user's hook never saw the 404


# -- 8: httpx_args that the engine's one HTTP/1.1 transport cannot honour are refused -----------


@pytest.mark.parametrize(
    ("key", "make_value", "words"),
    [
        ("transport", httpx.HTTPTransport, "python -m tensorlake_sandbox.local"),
        ("mounts", lambda: {"all://": httpx.HTTPTransport()}, "engine's transport"),
        ("http2", lambda: True, "HTTP/1.1 only"),
        ("http1", lambda: False, "HTTP/1.1 only"),
        ("limits", lambda: httpx.Limits(max_connections=10), "max_connections=None"),
        ("proxy", lambda: "https://user:proxy-secret@proxy.example:3128", "https:// and socks5://"),
        ("proxy", lambda: httpx.URL("https://proxy.example:3128"), "https:// and socks5://"),
        ("proxy", lambda: "socks5://user:proxy-secret@proxy.example:1080", "https:// and socks5://"),
        ("proxy", lambda: "http://proxy.example:3128/some/path", "no path or query"),
        ("proxy", lambda: "http://proxy.example:3128/?user=x", "no path or query"),
        ("proxy", lambda: "proxy.example:3128", "http:// proxy URL"),
    ],
)
def test_httpx_args_the_engine_cannot_honour_are_refused_before_anything_is_sent(
    recorder, key, make_value, words
):
    with pytest.raises(ValueError, match=rf"httpx_args\[{key!r}\]") as info:
        sandbox_client(base_url=recorder.url, api_key="secret-key", httpx_args={key: make_value()})
    message = str(info.value)
    assert words in message, message
    assert "secret-key" not in message and "proxy-secret" not in message  # nor a proxy's password
    assert recorder.requests == []


@pytest.mark.parametrize(
    "args",
    [
        {"http2": False},
        {"http1": True},
        {"limits": httpx.Limits(max_connections=None, max_keepalive_connections=5, keepalive_expiry=1.0)},
        {"proxy": None},
    ],
    ids=["http2-false", "http1-true", "limits-without-max-connections", "proxy-none"],
)
def test_httpx_args_the_engine_honours_are_accepted_and_used(recorder, args):
    with sandbox_client(base_url=recorder.url, api_key="k", httpx_args=args) as client:
        recorder.reply(404, b'{"error": "no such process"}')
        with pytest.raises(SandboxError):
            sandbox_process_get.sync(PID, client=client)
    assert len(recorder.requests) == 1


@pytest.mark.parametrize("proxy", ["http://proxy.example:3128", "http://user:pw@proxy.example:3128/"])
def test_a_plain_http_proxy_url_is_accepted(proxy):
    for value in (proxy, httpx.URL(proxy)):
        sandbox_client(base_url="https://sbx.example", api_key="k", httpx_args={"proxy": value}).close()


def test_a_sandbox_client_refuses_an_httpx_client_of_someone_elses_making():
    """Without the engine's client, error statuses would not raise and a stdin write would never be
    counted as delivered (it was resent without end); the generated setters are refused."""
    client = sandbox_client(base_url="http://127.0.0.1:8500", api_key="secret-key")
    with pytest.raises(TypeError, match="makes its own connections"):
        client.set_httpx_client(httpx.Client())
    with pytest.raises(TypeError, match="makes its own connections"):
        client.set_async_httpx_client(httpx.AsyncClient())
