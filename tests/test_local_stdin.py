"""Stdin writes on the local sandbox: the body limit (413, nothing written), chunked bodies,
arrival order for one process, isolation between processes, and a pipe that breaks mid-body.

Bytes are checked by what the process itself reports (``sha256sum``, ``wc -c``).
"""

from __future__ import annotations

import array
import fcntl
import hashlib
import io
import os
import termios
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from tensorlake_api_client.api.sandbox_processes import (
    sandbox_process_close_stdin,
    sandbox_process_get,
    sandbox_process_kill,
    sandbox_process_stdin,
    sandbox_process_stdout,
)
from tensorlake_api_client.models import ProcessInfo
from tensorlake_api_client.types import File
from tensorlake_sandbox import PayloadTooLargeError, SandboxClient
from tensorlake_sandbox.local import DEFAULT_MAX_BODY_BYTES, LocalSandbox

from .conftest import StartFn

Wait = Callable[[int], ProcessInfo]
LIMIT = DEFAULT_MAX_BODY_BYTES


@pytest.fixture
def raw(local_sandbox: LocalSandbox) -> Iterator[httpx.Client]:
    """Plain httpx to the local sandbox, with the token: for bodies the generated client cannot send."""
    with httpx.Client(
        base_url=local_sandbox.base_url,
        headers={"Authorization": f"Bearer {local_sandbox.token}"},
        timeout=30,
    ) as client:
        yield client


def finish_and_read(client: SandboxClient, wait: Wait, pid: int) -> list[str]:
    sandbox_process_close_stdin.sync_detailed(pid, client=client)
    assert wait(pid).exit_code == 0
    out = sandbox_process_stdout.sync(pid, client=client)
    return out.lines


def chunks(data: bytes, size: int = 100_000) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_body_at_the_limit_is_accepted(
    local_client: SandboxClient, start_process: StartFn, wait_finished: Wait
) -> None:
    info = start_process("wc", "-c", stdin="pipe")
    body = File(payload=io.BytesIO(b"x" * LIMIT))
    assert sandbox_process_stdin.sync_detailed(info.pid, client=local_client, body=body).status_code == 204
    assert finish_and_read(local_client, wait_finished, info.pid) == [str(LIMIT)]


def test_body_over_the_limit_is_413_and_writes_nothing(
    local_client: SandboxClient, start_process: StartFn, wait_finished: Wait
) -> None:
    info = start_process("wc", "-c", stdin="pipe")
    with pytest.raises(PayloadTooLargeError) as caught:
        sandbox_process_stdin.sync_detailed(
            info.pid, client=local_client, body=File(payload=io.BytesIO(b"x" * (LIMIT + 1)))
        )
    assert caught.value.status_code == 413 and caught.value.code == "PAYLOAD_TOO_LARGE"
    # The connection survived the refusal and the pipe is still open: two bytes more.
    body = File(payload=io.BytesIO(b"ok"))
    assert sandbox_process_stdin.sync_detailed(info.pid, client=local_client, body=body).status_code == 204
    assert finish_and_read(local_client, wait_finished, info.pid) == ["2"]


def test_chunked_bodies_within_and_over_the_limit(
    raw: httpx.Client, local_client: SandboxClient, start_process: StartFn, wait_finished: Wait
) -> None:
    info = start_process("sha256sum", stdin="pipe")
    url = f"/api/v1/processes/{info.pid}/stdin"
    over = raw.post(url, content=chunks(b"y" * (LIMIT + 1)))
    assert over.status_code == 413
    assert over.json()["code"] == "PAYLOAD_TOO_LARGE"
    assert "content-length" not in over.request.headers  # it really was chunked
    data = bytes(range(256)) * 5000
    within = raw.post(url, content=chunks(data))
    assert within.status_code == 204, within.text
    digest = hashlib.sha256(data).hexdigest()
    assert finish_and_read(local_client, wait_finished, info.pid) == [f"{digest}  -"]


def wait_stdin_pipe_full(pid: int, timeout: float = 20.0) -> None:
    """Wait until the stdin pipe of local process ``pid`` is full: its writer is blocked."""
    fd = os.open(f"/proc/{pid}/fd/0", os.O_RDONLY | os.O_NONBLOCK)  # the same pipe, read nothing
    try:
        capacity = fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)
        queued = array.array("i", [0])
        deadline = time.monotonic() + timeout
        while True:
            fcntl.ioctl(fd, termios.FIONREAD, queued)
            if queued[0] >= capacity - 4096:  # less than a page free
                return
            assert time.monotonic() < deadline, f"the stdin pipe of {pid} holds only {queued[0]} bytes"
            time.sleep(0.01)
    finally:
        os.close(fd)


def test_writes_to_one_process_apply_in_arrival_order(
    raw: httpx.Client, local_client: SandboxClient, start_process: StartFn, wait_finished: Wait
) -> None:
    # The process reads nothing for a while, so the first (large) write blocks on the full pipe
    # while the next ones arrive; they must wait their turn, not slip in between its chunks.
    info = start_process("sh", "-c", "sleep 1; exec sha256sum", stdin="pipe")
    url = f"/api/v1/processes/{info.pid}/stdin"
    bodies = [b"A" * 1_000_000, b"B" * 1000, b"C" * 1000, b"D" * 300_000]
    statuses: list[int] = []

    def send(body: bytes) -> None:
        statuses.append(raw.post(url, content=body).status_code)

    threads = []
    for body in bodies:
        thread = threading.Thread(target=send, args=(body,))
        thread.start()
        threads.append(thread)
        if body is bodies[0]:
            wait_stdin_pipe_full(info.pid)  # the first write is under way, and blocked
        else:
            time.sleep(0.15)  # arrival order; nothing observable tells a queued write has arrived
    for thread in threads:
        thread.join(30)
    assert statuses == [204] * len(bodies)
    digest = hashlib.sha256(b"".join(bodies)).hexdigest()
    assert finish_and_read(local_client, wait_finished, info.pid) == [f"{digest}  -"]


def test_a_process_that_does_not_read_blocks_no_one_else(
    raw: httpx.Client, local_client: SandboxClient, start_process: StartFn, wait_finished: Wait
) -> None:
    stuck = start_process("sleep", "60", stdin="pipe")
    reader = start_process("wc", "-c", stdin="pipe")
    result: dict[str, httpx.Response] = {}

    def send_to_stuck() -> None:
        result["stuck"] = raw.post(f"/api/v1/processes/{stuck.pid}/stdin", content=b"z" * 1_000_000)

    blocked = threading.Thread(target=send_to_stuck)
    blocked.start()
    wait_stdin_pipe_full(stuck.pid)  # the write to the stuck process is under way, and blocked
    began = time.monotonic()
    assert raw.post(f"/api/v1/processes/{reader.pid}/stdin", content=b"12345").status_code == 204
    assert raw.get(f"/api/v1/processes/{stuck.pid}").json()["status"] == "running"
    assert time.monotonic() - began < 5
    assert blocked.is_alive()  # still waiting for the pipe: backpressure, not buffering
    # The stuck process dies mid-body: its writer gets 400 STDIN_NOT_WRITABLE, not a hang.
    sandbox_process_kill.sync_detailed(stuck.pid, client=local_client)
    blocked.join(10)
    assert not blocked.is_alive()
    assert result["stuck"].status_code == 400
    assert result["stuck"].json()["code"] == "STDIN_NOT_WRITABLE"
    assert finish_and_read(local_client, wait_finished, reader.pid) == ["5"]
    info = sandbox_process_get.sync(stuck.pid, client=local_client)
    assert info.stdin_writable is False
