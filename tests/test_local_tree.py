"""Kill means everything the process started: children that detached with ``setsid`` included.

Each test starts a real ``setsid sleep`` (a new session and process group, out of reach of a
signal to the original group), learns its pid from the program's own output, and checks that
killing the process, timing out a run, killing a terminal, or stopping the server ends it.
Linux only (the means are Linux's: see local/_tree.py).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
from httpx_ws import connect_ws

from tensorlake_sandbox.local import LocalSandbox

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="detached children are tracked on Linux")

# Prints the pid of a detached `sleep` (its own session), then keeps running.
DETACH = "setsid sh -c 'echo detached=$$; exec sleep 300' & wait"
# The same, but the parent exits at once, leaving the detached child behind.
DETACH_AND_EXIT = "setsid sh -c 'echo detached=$$; exec sleep 300' & sleep 0.2"


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] != b"Z"


def until(condition: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[LocalSandbox]:
    with LocalSandbox(pty_kill_grace=0.2) as sb:
        yield sb


@pytest.fixture
def http(sandbox: LocalSandbox) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {sandbox.token}"}
    with httpx.Client(base_url=sandbox.base_url, headers=headers, timeout=20) as client:
        yield client


def detached_pid(lines: list[str]) -> int | None:
    for line in lines:
        if line.startswith("detached="):
            return int(line.removeprefix("detached="))
    return None


def start_detaching(http: httpx.Client, script: str) -> tuple[int, int]:
    pid = http.post("/api/v1/processes", json={"command": "sh", "args": ["-c", script]}).json()["pid"]
    found: list[int] = []

    def seen() -> bool:
        child = detached_pid(http.get(f"/api/v1/processes/{pid}/stdout").json()["lines"])
        if child is not None:
            found.append(child)
        return child is not None

    until(seen)
    assert alive(found[0])
    return pid, found[0]


def test_killing_a_process_kills_its_setsid_child(http: httpx.Client) -> None:
    pid, child = start_detaching(http, DETACH)
    assert http.delete(f"/api/v1/processes/{pid}").status_code == 204
    until(lambda: not alive(child))


def test_killing_a_finished_process_kills_the_setsid_child_it_left(http: httpx.Client) -> None:
    pid, child = start_detaching(http, DETACH_AND_EXIT)
    until(lambda: http.get(f"/api/v1/processes/{pid}").json()["status"] != "running")
    assert alive(child)  # it outlived its parent
    assert http.delete(f"/api/v1/processes/{pid}").status_code == 204
    until(lambda: not alive(child))


def test_a_run_timeout_kills_the_setsid_child(http: httpx.Client) -> None:
    body = {"command": "sh", "args": ["-c", DETACH], "timeout": 1}
    with http.stream("POST", "/api/v1/processes/run", json=body) as events:
        text = "".join(events.iter_text())
    assert '"reason":"timed_out"' in text
    child = int(text.split("detached=")[1].split('"')[0])
    until(lambda: not alive(child))


def test_killing_a_terminal_kills_its_setsid_child(sandbox: LocalSandbox, http: httpx.Client) -> None:
    created = http.post("/api/v1/pty", json={"command": "sh", "args": ["-c", DETACH]}).json()
    output = b""
    url = f"{sandbox.base_url}/api/v1/pty/{created['session_id']}/ws"
    with httpx.Client() as plain, connect_ws(url, plain, headers={"X-PTY-Token": created["token"]}) as ws:
        ws.send_bytes(b"\x02")
        while b"\n" not in output.split(b"detached=")[-1] or b"detached=" not in output:
            output += ws.receive_bytes(timeout=20)[1:]
    child = int(output.split(b"detached=")[1].split(b"\r")[0].split(b"\n")[0])
    assert alive(child)
    assert http.delete(f"/api/v1/pty/{created['session_id']}").status_code == 204
    until(lambda: not alive(child))


def test_stopping_the_server_kills_setsid_children_of_processes_and_terminals() -> None:
    with LocalSandbox() as sandbox:
        headers = {"Authorization": f"Bearer {sandbox.token}"}
        with httpx.Client(base_url=sandbox.base_url, headers=headers, timeout=20) as http:
            _, child = start_detaching(http, DETACH)
            _, orphan = start_detaching(http, DETACH_AND_EXIT)
    until(lambda: not alive(child) and not alive(orphan))


def test_the_child_is_really_detached() -> None:
    # The premise of the tests above: the child is in a session of its own, so a signal to the
    # process group would miss it.
    with LocalSandbox() as sandbox:
        headers = {"Authorization": f"Bearer {sandbox.token}"}
        with httpx.Client(base_url=sandbox.base_url, headers=headers, timeout=20) as http:
            pid, child = start_detaching(http, DETACH)
            assert os.getsid(child) == child != os.getsid(pid)
            assert os.getpgid(child) != pid
