"""Tensorlake's official SDK, unchanged, drives terminals in the local sandbox (``Sandbox.create_pty``).

The SDK is pinned in the dev group (pyproject.toml), so these run in `make test`.
"""

from __future__ import annotations

import gc
import threading

import pytest
import tensorlake.sandbox as sdk

from tensorlake_sandbox.local import LocalSandbox

SANDBOX_ID = "sbx-official"

# The SDK's websocket-client leaves a socket to the garbage collector after disconnect().
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(scope="module")
def official_sandbox():
    # The SDK sends `Host: <sandbox-id>.local` to a localhost proxy URL; the local sandbox accepts it.
    with LocalSandbox() as local:
        yield sdk.Sandbox(SANDBOX_ID, proxy_url=local.base_url, api_key=local.token)
    gc.collect()  # here, under this module's warning filter, rather than at the end of the session


def test_create_pty_answers_and_exits_with_its_code(official_sandbox):
    chunks: list[bytes] = []
    got_42 = threading.Event()

    def on_data(data: bytes) -> None:
        chunks.append(data)
        if b"42" in b"".join(chunks):
            got_42.set()

    pty = official_sandbox.create_pty("sh", rows=30, cols=100, on_data=on_data)
    pty.send_input("stty size; echo $((6*7)); exit 5\n")
    assert pty.wait(timeout=20) == 5
    output = b"".join(chunks)
    assert b"42" in output
    assert b"30 100" in output


def test_reattach_with_connect_pty_replays_history(official_sandbox):
    session = official_sandbox.create_pty_session("sh")
    session = getattr(session, "value", session)
    first: list[bytes] = []
    seen = threading.Event()

    def on_first(data: bytes) -> None:
        first.append(data)
        if b"marker-12" in b"".join(first):
            seen.set()

    pty = official_sandbox.connect_pty(session["session_id"], session["token"], on_data=on_first)
    pty.send_input("echo marker-$((3*4))\n")
    assert seen.wait(20)
    pty.disconnect()
    again: list[bytes] = []
    pty = official_sandbox.connect_pty(session["session_id"], session["token"], on_data=again.append)
    pty.resize(120, 40)
    pty.send_input("stty size; exit 3\n")
    assert pty.wait(timeout=20) == 3
    output = b"".join(again)
    assert b"marker-12" in output  # replayed history
    assert b"40 120" in output
