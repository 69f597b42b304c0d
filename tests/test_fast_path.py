"""The fast path for small requests (`_native`, pyreqwest): same bytes, never twice, exact errors.

Each test says which path it expects. The fast path sends no ``Accept-Encoding`` (httpx
does), so a recorded request shows which path carried it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import certifi
import httpx
import pytest

from tensorlake_api_client.api.sandbox_processes import sandbox_process_close_stdin, sandbox_process_stdin
from tensorlake_api_client.types import File
from tensorlake_sandbox import (
    DeliveryUnknownError,
    SandboxClient,
    SandboxConnectionError,
    SandboxTimeoutError,
    awrite_stdin,
    sandbox_client,
    write_stdin,
)
from tests.closing import close_after_test
from tests.servers.fault import OK, Close, Slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = "fast-path-key"
PID = 7
MODES = ["sync", "async"]


def client_for(url: str, **options: Any) -> SandboxClient:
    client = sandbox_client(base_url=url, api_key=KEY, timeout=options.pop("timeout", 10.0), **options)
    close_after_test(client)
    return client


def stdin_call(client: SandboxClient, mode: str, body: bytes, **kwargs: Any) -> Any:
    """One generated stdin call on the sync or the async path (a fresh event loop)."""
    if mode == "sync":
        return sandbox_process_stdin.sync_detailed(PID, client=client, body=File(payload=body), **kwargs)

    async def main() -> Any:
        try:
            return await sandbox_process_stdin.asyncio_detailed(
                PID, client=client, body=File(payload=body), **kwargs
            )
        finally:
            await client.aclose()

    return asyncio.run(main())


def took_fast_path(headers: dict[str, str]) -> bool:
    return "accept-encoding" not in headers


# -- the same request ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_fast_path_sends_the_same_request_as_httpx(recorder, mode):
    body = os.urandom(3000)
    seen = {}
    for fast in (True, False):
        recorder.reset()
        client = client_for(recorder.url, fast_path=fast, httpx_args={"headers": {"X-Trace": "t1"}})
        assert stdin_call(client, mode, body).status_code == 204
        (received,) = recorder.requests
        assert (received.method, received.path) == ("POST", f"/api/v1/processes/{PID}/stdin")
        assert (received.length, received.head) == (len(body), body)
        seen[fast] = received.headers
    assert took_fast_path(seen[True]) and not took_fast_path(seen[False])
    assert seen[True]["authorization"] == f"Bearer {KEY}"
    assert seen[True]["content-length"] == "3000" and "transfer-encoding" not in seen[True]
    # Every other header is the same, value for value.
    assert {k: v for k, v in seen[True].items() if k != "host"} == {
        k: v for k, v in seen[False].items() if k not in ("host", "accept-encoding")
    }


@pytest.mark.parametrize("mode", MODES)
def test_fast_path_is_left_to_httpx_for_what_only_httpx_does(recorder, mode):
    hooked: list[int] = []

    def hook(response: httpx.Response) -> None:
        hooked.append(response.status_code)

    async def ahook(response: httpx.Response) -> None:
        hooked.append(response.status_code)

    cases: list[tuple[str, Callable[[], Any]]] = [
        ("a body over 64 KiB", lambda: stdin_call(client_for(recorder.url), mode, b"x" * (64 * 1024 + 1))),
        ("a per-call timeout", lambda: stdin_call(client_for(recorder.url), mode, b"x", timeout=5.0)),
        ("fast_path=False", lambda: stdin_call(client_for(recorder.url, fast_path=False), mode, b"x")),
        (
            "an event hook",
            lambda: stdin_call(
                client_for(
                    recorder.url,
                    httpx_args={"event_hooks": {"response": [hook if mode == "sync" else ahook]}},
                ),
                mode,
                b"x",
            ),
        ),
    ]
    for why, send in cases:
        recorder.reset()
        assert send().status_code == 204, why
        (received,) = recorder.requests
        assert not took_fast_path(received.headers), why
    assert hooked == [204]
    # A bodiless POST could act on its head alone: it never takes the fast path.
    recorder.reset()
    sandbox_process_close_stdin.sync_detailed(PID, client=client_for(recorder.url))
    (received,) = recorder.requests
    assert not took_fast_path(received.headers)


def test_fast_path_is_off_when_a_proxy_or_ca_file_from_the_environment_applies(monkeypatch):
    url = "https://sb-1.sandbox.tensorlake.ai"  # nothing is sent: only how the client is built
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert sandbox_client(base_url=url, api_key=KEY).get_httpx_client()._fast_path  # type: ignore[attr-defined]
    for name, value in [("HTTPS_PROXY", "http://127.0.0.1:9"), ("SSL_CERT_FILE", certifi.where())]:
        with monkeypatch.context() as m:
            m.setenv(name, value)
            client = sandbox_client(base_url=url, api_key=KEY)
            assert not client.get_httpx_client()._fast_path, name  # type: ignore[attr-defined]


@pytest.mark.parametrize("mode", MODES)
def test_a_header_pyreqwest_refuses_fails_as_it_does_without_the_fast_path(recorder, mode):
    # pyreqwest raises its own ValueError for such a header: the call must fail exactly as it
    # does without the fast path (httpx's, or aiohttp's, error), and send nothing either way.
    errors = []
    for fast in (True, False):
        client = client_for(recorder.url, fast_path=fast, httpx_args={"headers": {"X-Note": "a\nb"}})
        with pytest.raises(Exception) as info:
            stdin_call(client, mode, b"x")
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1]
    assert recorder.requests == []


@pytest.mark.parametrize("value", ["no", 0, 1, None])
def test_fast_path_that_is_not_a_bool_is_refused_before_anything_is_built(recorder, value):
    with pytest.raises(TypeError, match="fast_path must be True or False"):
        sandbox_client(base_url=recorder.url, api_key=KEY, fast_path=value)
    assert recorder.requests == []


# -- never twice, and errors that say what happened to the bytes -------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_a_request_whose_connection_closes_after_the_body_is_never_resent(make_server, mode):
    # reqwest resends such a request by itself when it can replay the body (a duplicate write).
    server = make_server(plan=[OK, Close()])
    client = client_for(server.base_url)
    assert stdin_call(client, mode, b"first").status_code == 204
    with pytest.raises(SandboxConnectionError) as info:
        stdin_call(client, mode, b"second")
    assert info.value.may_have_been_sent is True
    assert [(r.size, r.status) for r in server.stdin_requests] == [(5, 204), (6, None)]
    assert bytes(server.accepted) == b"first"


@pytest.mark.parametrize("mode", MODES)
def test_write_stdin_through_a_dropped_connection_is_unknown_and_sent_once(make_server, mode):
    server = make_server(plan=[Close()])
    client = client_for(server.base_url)
    with pytest.raises(DeliveryUnknownError):
        if mode == "sync":
            write_stdin(client, PID, b"only once")
        else:
            stdin = awrite_stdin(client, PID, b"only once")
            asyncio.run(stdin)
    assert len(server.stdin_requests) == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("mode", MODES)
def test_a_refused_connection_is_not_sent(mode):
    client = client_for(f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(SandboxConnectionError) as info:
        stdin_call(client, mode, b"never left")
    assert info.value.may_have_been_sent is False
    assert isinstance(info.value, httpx.ConnectError)


@pytest.mark.parametrize("mode", MODES)
def test_a_fast_path_failure_says_its_root_cause_on_one_line(mode):
    # pyreqwest's str() is the repr of a tuple holding its list of causes; the CLI prints
    # the message, so it must read like httpx's.
    client = client_for(f"http://127.0.0.1:{_closed_port()}")
    with pytest.raises(SandboxConnectionError) as info:
        stdin_call(client, mode, b"never left")
    cause = str(info.value.__cause__)
    assert "Connection refused" in cause
    assert "\n" not in cause and "{" not in cause and "causes" not in cause


@pytest.mark.parametrize("mode", MODES)
def test_a_slow_answer_is_a_timeout_that_may_have_been_sent(make_server, mode):
    server = make_server(plan=[Slow(30)])
    client = client_for(server.base_url, timeout=httpx.Timeout(10.0, read=0.5))
    with pytest.raises(SandboxTimeoutError) as info:
        stdin_call(client, mode, b"held")
    assert info.value.may_have_been_sent is True
    assert isinstance(info.value, httpx.ReadTimeout)
    assert len(server.stdin_requests) == 1


# -- Ctrl-C and fork -------------------------------------------------------------------------

_CTRL_C = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    from tensorlake_api_client.api.sandbox_processes import sandbox_process_stdin
    from tensorlake_api_client.types import File
    from tensorlake_sandbox import sandbox_client
    from tests.servers.fault import FaultServer, Slow

    server = FaultServer(plan=[Slow(60)]).start()
    client = sandbox_client(base_url=server.base_url, api_key="k", timeout=120)
    assert client.get_httpx_client()._fast_path
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
    start = time.monotonic()
    try:
        sandbox_process_stdin.sync_detailed(1, client=client, body=File(payload=b"held"))
    except KeyboardInterrupt:
        print("interrupted after %.1f" % (time.monotonic() - start))
    server.stop()
    """
)


def test_ctrl_c_interrupts_a_fast_path_request_at_once():
    out = subprocess.run(
        [sys.executable, "-c", _CTRL_C], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert "interrupted after" in out.stdout, out.stdout + out.stderr
    assert float(out.stdout.split("interrupted after", 1)[1].split()[0]) < 5


_FORK = textwrap.dedent(
    """
    import os, sys
    from tensorlake_api_client.api.sandbox_processes import sandbox_process_stdin
    from tensorlake_api_client.types import File
    from tensorlake_sandbox import sandbox_client

    client = sandbox_client(base_url=sys.argv[1], api_key="k")
    sandbox_process_stdin.sync_detailed(1, client=client, body=File(payload=b"parent"))
    pid = os.fork()
    if pid == 0:
        try:
            r = sandbox_process_stdin.sync_detailed(1, client=client, body=File(payload=b"child"))
            os._exit(0 if r.status_code == 204 else 3)
        except BaseException:
            os._exit(4)
    _, status = os.waitpid(pid, 0)
    print("child exit", os.waitstatus_to_exitcode(status))
    """
)


def test_a_forked_child_sends_through_httpx(recorder):
    out = subprocess.run(
        [sys.executable, "-c", _FORK, recorder.url], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert "child exit 0" in out.stdout, out.stdout + out.stderr
    parent, child = recorder.requests
    assert (parent.head, took_fast_path(parent.headers)) == (b"parent", True)
    assert (child.head, took_fast_path(child.headers)) == (b"child", False)
