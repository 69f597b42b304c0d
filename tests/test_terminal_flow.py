"""A terminal whose reader pauses keeps its connection, loses nothing and gets the exit code (issue 21).

The local sandbox here pings every 0.3 s and waits 0.3 s for the answer (the defaults are
20 s and 20 s), so a pause of 2 s is many ping rounds: before the fix the sandbox closed the
paused client with 1011 "keepalive ping timeout" and the program's output was lost.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tensorlake_sandbox import SandboxClient, open_terminal, sandbox_client, terminal
from tensorlake_sandbox.local import create_app
from tensorlake_sandbox.local._runner import ServerThread, bind, make_config


@pytest.fixture(scope="module")
def quick_pings() -> Iterator[SandboxClient]:
    app = create_app(token="t")
    sock = bind("127.0.0.1", 0)
    server = ServerThread(make_config(app, ws_ping_interval=0.3, ws_ping_timeout=0.3), sock)
    server.start()
    client = sandbox_client(base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", api_key="t")
    try:
        yield client
    finally:
        client.get_httpx_client().close()
        server.stop()


def test_a_paused_reader_keeps_its_connection_and_loses_nothing(
    quick_pings: SandboxClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A small client queue, so that the pause reaches the sandbox (kernel buffers hold the rest).
    monkeypatch.setattr(terminal, "QUEUE_FRAMES", 8)
    script = "yes 0123456789 | head -c 12000000; echo; echo DONE; exit 7"
    with open_terminal(quick_pings, "sh", ["-c", script]) as term:
        time.sleep(2.0)  # the pause under test (not a synchronisation): many ping rounds
        output = b"".join(term)
        assert term.returncode == 7
    assert output.count(b"0123456789") == 12000000 // 11
    assert b"DONE" in output
