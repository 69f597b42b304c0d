"""Issue #10 against an in-process local sandbox: each finding of the adversarial review, reproduced.

Pid reuse is forced through /proc/sys/kernel/ns_last_pid where it is writable (root in the
pid namespace); bad framing and slow clients are sent over raw sockets, since httpx will
not produce them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tensorlake_sandbox.local import LocalSandbox, create_app
from tensorlake_sandbox.local._runner import ServerThread, bind, make_config

NS_LAST_PID = "/proc/sys/kernel/ns_last_pid"


@pytest.fixture
def sandbox() -> Iterator[LocalSandbox]:
    """A local sandbox of its own (these tests stop it, or check what it leaves behind)."""
    with LocalSandbox() as sb:
        yield sb


@pytest.fixture
def http(sandbox: LocalSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=sandbox.base_url, headers={"Authorization": f"Bearer {sandbox.token}"}, timeout=20
    ) as client:
        yield client


def start(http: httpx.Client, *args: str, **fields: Any) -> int:
    response = http.post("/api/v1/processes", json={"command": args[0], "args": list(args[1:]), **fields})
    assert response.status_code == 201, response.text
    pid: int = response.json()["pid"]
    return pid


def wait_final(http: httpx.Client, pid: int, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (info := http.get(f"/api/v1/processes/{pid}").json())["status"] == "running":
        assert time.monotonic() < deadline, f"process {pid} still running after {timeout} s"
        time.sleep(0.02)
    result: dict[str, Any] = info
    return result


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def raw_request(url: str, head: bytes, body: bytes = b"", read_timeout: float = 10.0) -> bytes:
    """Send bytes as they are; everything the server answers until it closes (or the timeout)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=read_timeout) as sock:
        sock.sendall(head)

        def send_body() -> None:
            # The server may answer and close before taking it all: that is its right.
            with contextlib.suppress(OSError):
                sock.sendall(body)

        sender = threading.Thread(target=send_body, daemon=True)
        sender.start()
        chunks = []
        with contextlib.suppress(TimeoutError, ConnectionResetError):
            while data := sock.recv(65536):
                chunks.append(data)
        sender.join(read_timeout)
    return b"".join(chunks)


# -- 1. never signal a pid the sandbox does not own -------------------------------------------


def _spawn_with_pid(target: int, attempts: int = 20) -> subprocess.Popen[bytes]:
    """A stranger process in its own group, with pid ``target`` if the kernel hands it out."""
    for attempt in range(attempts):
        with open(NS_LAST_PID, "w") as f:
            f.write(str(target - 1))
        stranger = subprocess.Popen(["sleep", "30"], start_new_session=True)
        if stranger.pid == target or attempt == attempts - 1:
            return stranger
        # The pid is still taken (as it should be), or another process got there first.
        stranger.kill()
        stranger.wait()
    raise AssertionError("unreachable")


@pytest.mark.skipif(
    not os.access(NS_LAST_PID, os.W_OK), reason="forcing pid reuse needs a writable ns_last_pid"
)
def test_a_reused_pid_is_never_signalled(sandbox: LocalSandbox, http: httpx.Client) -> None:
    # The leader exits while a daemon it started (in a session of its own) holds its stdout.
    leader = start(http, "sh", "-c", "setsid sleep 30 & echo $!; exit 0")
    info = wait_final(http, leader)
    assert info["status"] == "exited"
    daemon = int(http.get(f"/api/v1/processes/{leader}/stdout").json()["lines"][0])
    # The pid stays taken: the leader is this (the server's) process's unreaped child. Checked
    # directly, since ns_last_pid is machine-wide: other test workers fork too, and one of them
    # (not the stranger below) could get a released pid.
    with open(f"/proc/{leader}/stat") as f:
        state, ppid = f.read().rsplit(")", 1)[1].split()[:2]
    assert (state, int(ppid)) == ("Z", os.getpid()), "the sandbox let the leader's pid go"
    stranger = _spawn_with_pid(leader)
    try:
        assert http.delete(f"/api/v1/processes/{leader}").status_code == 204
        refused = http.post(f"/api/v1/processes/{leader}/signal", json={"signal": 15})
        assert refused.status_code == 400 and "not running" in refused.json()["error"]
        sandbox.stop()
        assert alive(stranger.pid), "the sandbox signalled a process it did not start"
        # The server kept the leader's pid taken for as long as it listed the process.
        assert stranger.pid != leader
    finally:
        stranger.kill()
        stranger.wait()
        with contextlib.suppress(ProcessLookupError):
            os.kill(daemon, signal.SIGKILL)


def test_kill_reaches_the_whole_group_even_after_the_leader_exited(http: httpx.Client) -> None:
    pid = start(http, "sh", "-c", "sleep 30 & echo $!; exit 0")
    wait_final(http, pid)
    child = int(http.get(f"/api/v1/processes/{pid}/stdout").json()["lines"][0])
    assert alive(child)
    assert http.delete(f"/api/v1/processes/{pid}").status_code == 204
    deadline = time.monotonic() + 10
    while alive(child):
        assert time.monotonic() < deadline, "the background child of the group survived the kill"
        time.sleep(0.02)


# -- 2. bounded memory: eviction ----------------------------------------------------------------


@pytest.fixture
def small_server() -> Iterator[Callable[..., httpx.Client]]:
    """Start an app with small limits under the package's runner; yields a factory of clients."""
    servers: list[ServerThread] = []
    clients: list[httpx.Client] = []

    def make(**limits: Any) -> httpx.Client:
        app = create_app(token="t", **limits)
        sock = bind("127.0.0.1", 0)
        server = ServerThread(make_config(app), sock)
        server.start()
        servers.append(server)
        port = sock.getsockname()[1]
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": "Bearer t"}, timeout=20
        )
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()
    for s in servers:
        s.stop()


def test_finished_processes_beyond_the_retention_limit_are_evicted_oldest_first(
    small_server: Callable[..., httpx.Client],
) -> None:
    http = small_server(retained_finished=3)
    pids = []
    for n in range(5):
        pid = start(http, "echo", str(n))
        wait_final(http, pid)
        pids.append(pid)
    listed = [p["pid"] for p in http.get("/api/v1/processes").json()["processes"]]
    assert listed == pids[2:]
    assert http.get(f"/api/v1/processes/{pids[0]}/output").status_code == 404
    assert http.get(f"/api/v1/processes/{pids[4]}/output").json()["lines"] == ["4"]


def test_output_beyond_the_total_budget_evicts_the_oldest_finished_process(
    small_server: Callable[..., httpx.Client],
) -> None:
    http = small_server(total_output_budget=3 * 1024 * 1024)
    big = "head -c 1000000 /dev/zero | tr '\\0' x | fold -w 1000"  # 1000 lines of 1000 bytes
    pids = []
    for _ in range(4):
        pid = start(http, "sh", "-c", big)
        wait_final(http, pid)
        pids.append(pid)
    assert http.get(f"/api/v1/processes/{pids[0]}").status_code == 404
    newest = http.get(f"/api/v1/processes/{pids[-1]}/stdout").json()
    assert newest["line_count"] == 1000 and newest["lines"][-1] == "x" * 1000


def test_output_is_streamed_as_valid_json_with_long_and_short_lines(http: httpx.Client) -> None:
    script = "echo a; head -c 200000 /dev/zero | tr '\\0' '\\377'; echo; printf 'q\"\\\\\\n'; echo"
    pid = start(http, "sh", "-c", script)
    wait_final(http, pid)
    body = http.get(f"/api/v1/processes/{pid}/output").json()
    assert body == {"pid": pid, "lines": ["a", "\ufffd" * 200_000, 'q"\\', ""], "line_count": 4}


# -- 4. status final when the leader exits ----------------------------------------------------


def test_status_is_final_when_the_leader_exits_whatever_a_background_child_holds(http: httpx.Client) -> None:
    began = time.monotonic()
    # The child holds the output for 30 s; the status is final long before (10 s: a loaded machine).
    pid = start(http, "sh", "-c", "sleep 30 & echo started; exit 3")
    info = wait_final(http, pid, timeout=15)
    assert time.monotonic() - began < 10
    assert (info["status"], info["exit_code"]) == ("exited", 3)
    assert http.get(f"/api/v1/processes/{pid}/stdout").json()["lines"] == ["started"]
    # A follower (what `exec` reads) ends too, with the output.
    with http.stream("GET", f"/api/v1/processes/{pid}/output/follow") as follow:
        text = "".join(follow.iter_text())
    assert time.monotonic() - began < 10, "the follower waited for the child"
    assert '"line":"started"' in text and text.rstrip().endswith("event: eof\ndata: {}")
    http.delete(f"/api/v1/processes/{pid}")


def test_a_daemonised_child_does_not_hold_up_follow(http: httpx.Client) -> None:
    pid = start(http, "sh", "-c", "setsid sleep 30 & echo $!")
    began = time.monotonic()
    with http.stream("GET", f"/api/v1/processes/{pid}/output/follow") as follow:
        text = "".join(follow.iter_text())
    assert time.monotonic() - began < 5 and "event: eof" in text
    daemon = int(http.get(f"/api/v1/processes/{pid}/stdout").json()["lines"][0])
    os.kill(daemon, signal.SIGKILL)


# -- 5. ambiguous framing ------------------------------------------------------------------------


def test_content_length_with_transfer_encoding_is_400_and_writes_nothing(
    sandbox: LocalSandbox, http: httpx.Client
) -> None:
    pid = start(http, "wc", "-c", stdin_mode="pipe")
    body = b"".join(b"%x\r\n%s\r\n" % (65536, b"z" * 65536) for _ in range(160)) + b"0\r\n\r\n"  # 10 MiB
    head = (
        f"POST /api/v1/processes/{pid}/stdin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {sandbox.token}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
    ).encode()
    answer = raw_request(sandbox.base_url, head, body)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"Content-Length and Transfer-Encoding" in answer
    assert http.post(f"/api/v1/processes/{pid}/stdin/close").status_code == 204
    wait_final(http, pid)
    assert http.get(f"/api/v1/processes/{pid}/stdout").json()["lines"] == ["0"]


# -- 6. slow and idle connections --------------------------------------------------------------


def test_unfinished_request_heads_time_out_and_idle_connections_cannot_starve_a_client() -> None:
    app = create_app(token="t")
    sock = bind("127.0.0.1", 0)
    server = ServerThread(make_config(app, header_timeout=1.0, connection_cap=8), sock)
    server.start()
    port = sock.getsockname()[1]
    idle: list[socket.socket] = []
    try:
        for n in range(30):  # silent ones and slow-header ones, well over the cap of 8
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            if n % 2:
                s.sendall(b"GET /api/v1/processes HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            idle.append(s)
        began = time.monotonic()
        response = httpx.get(
            f"http://127.0.0.1:{port}/api/v1/processes", headers={"Authorization": "Bearer t"}, timeout=10
        )
        assert response.status_code == 200 and time.monotonic() - began < 5
        # Every one of them is closed by the server, by the cap or by the head deadline.
        for s in idle:
            s.settimeout(10)
            with contextlib.suppress(ConnectionResetError):
                assert s.recv(100) == b""
    finally:
        for s in idle:
            s.close()
        server.stop()


# -- 7. credentials are not inherited -----------------------------------------------------------


def test_the_token_and_tensorlake_keys_are_not_inherited(
    http: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TENSORLAKE_LOCAL_TOKEN", "local-secret")
    monkeypatch.setenv("TENSORLAKE_API_KEY", "api-secret")
    monkeypatch.setenv("tensorlake_other", "other-secret")
    monkeypatch.setenv("KEPT_VARIABLE", "kept")
    pid = start(http, "env", env={"TENSORLAKE_EXPLICIT": "asked-for"})
    wait_final(http, pid)
    lines = http.get(f"/api/v1/processes/{pid}/stdout").json()["lines"]
    assert "KEPT_VARIABLE=kept" in lines and "TENSORLAKE_EXPLICIT=asked-for" in lines
    assert not any("secret" in line for line in lines)


# -- 8. bad input is 400/404/413, never 500 -----------------------------------------------------


def test_huge_pids_are_404_not_500(http: httpx.Client) -> None:
    for pid in ("9" * 4300, "9" * 11, "4294967296"):
        for method, path in (("GET", ""), ("DELETE", ""), ("GET", "/output"), ("POST", "/stdin/close")):
            response = http.request(method, f"/api/v1/processes/{pid}{path}")
            assert response.status_code == 404, (pid[:20], path, response.text)
            assert response.json()["code"] == "NOT_FOUND"


def test_deeply_nested_json_is_400(http: httpx.Client) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    for path in ("/api/v1/processes", f"/api/v1/processes/{os.getpid()}/signal"):
        response = http.post(path, content=deep, headers={"content-type": "application/json"})
        assert response.status_code in (400, 404), response.text
        assert response.status_code == 400 or path.endswith("signal")


def test_oversized_json_is_413_declared_or_chunked(http: httpx.Client) -> None:
    big = json.dumps({"command": "true", "args": ["x" * (1024 * 1024)]}).encode()
    declared = http.post("/api/v1/processes", content=big)
    chunked = http.post("/api/v1/processes", content=iter([big[:1000], big[1000:]]))
    for response in (declared, chunked):
        assert response.status_code == 413 and response.json()["code"] == "PAYLOAD_TOO_LARGE"


def test_413_does_not_send_100_continue_nor_read_the_body(sandbox: LocalSandbox, http: httpx.Client) -> None:
    pid = start(http, "cat", stdin_mode="pipe", stdout_mode="discard")
    for path in (f"/api/v1/processes/{pid}/stdin", "/api/v1/processes"):
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {sandbox.token}\r\n"
            "Content-Length: 1073741824\r\nExpect: 100-continue\r\n\r\n"
        ).encode()
        answer = raw_request(sandbox.base_url, head)  # the body is never sent
        assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
        assert b"100 Continue" not in answer and b"PAYLOAD_TOO_LARGE" in answer
        assert b"connection: close" in answer.lower()
    # Unauthenticated, too: refused without a 100 Continue.
    head = (
        f"POST /api/v1/processes/{pid}/stdin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Length: 1073741824\r\nExpect: 100-continue\r\n\r\n"
    ).encode()
    answer = raw_request(sandbox.base_url, head)
    assert answer.startswith(b"HTTP/1.1 401 ") and b"100 Continue" not in answer


def test_stop_with_an_open_follower_logs_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    sandbox = LocalSandbox().start()
    headers = {"Authorization": f"Bearer {sandbox.token}"}
    with httpx.Client(base_url=sandbox.base_url, headers=headers, timeout=20) as client:
        pid = start(client, "sh", "-c", "while :; do echo tick; sleep 0.05; done")
        with client.stream("GET", f"/api/v1/processes/{pid}/output/follow") as follow:
            assert follow.status_code == 200
            next(follow.iter_lines())
            sandbox.stop()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text


def test_connections_are_served_without_nagle_delay() -> None:
    # Without TCP_NODELAY a response written in two parts (head, body) waits for the client's
    # delayed ACK: ~40 ms on every request. asyncio sets it only on sockets it sees as TCP.
    app = create_app(token="t")
    sock = bind("127.0.0.1", 0)
    server = ServerThread(make_config(app), sock)
    server.start()
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{sock.getsockname()[1]}", headers={"Authorization": "Bearer t"}
        ) as c:
            assert c.get("/api/v1/health").status_code == 200
            (connection,) = server.server.server_state.connections
            accepted = connection.transport.get_extra_info("socket")
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        server.stop()
