"""``python -m tensorlake_sandbox.local`` as a real subprocess: what it prints, where it listens,
clean shutdown on SIGTERM/SIGINT that kills the processes it started (and theirs), and the
server's peak memory while 256 MiB are streamed into one process.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

MIB = 1024 * 1024


@dataclass
class Server:
    proc: subprocess.Popen[str]
    base_url: str
    token: str
    port: int
    drain: threading.Thread
    banner: list[str]

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30
        )


def start_server(*args: str, env_token: str | None = None) -> Server:
    env = {k: v for k, v in os.environ.items() if k != "TENSORLAKE_LOCAL_TOKEN"}
    if env_token is not None:
        env["TENSORLAKE_LOCAL_TOKEN"] = env_token
    proc = subprocess.Popen(
        [sys.executable, "-m", "tensorlake_sandbox.local", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    url = None
    token = env_token
    banner = []
    for _ in range(2 if env_token is not None else 3):
        line = proc.stdout.readline()
        banner.append(line)
        if m := re.search(r"(http://127\.0\.0\.1:(\d+))", line):
            url, port = m.group(1), int(m.group(2))
        if m := re.search(r"Token \(generated, shown once\): (\S+)", line):
            token = m.group(1)
    assert url is not None and token is not None, "the server did not print its URL and token"
    # Keep reading its stdout (access log) so that a full pipe never stalls the server.
    drain = threading.Thread(target=proc.stdout.read, daemon=True)
    drain.start()
    return Server(proc, url, token, port, drain, banner)


def stop(server: Server, sig: int = signal.SIGTERM) -> tuple[int, str]:
    """Signal the server, wait for it to exit; its exit status and stderr."""
    if server.proc.poll() is None:
        server.proc.send_signal(sig)
    server.proc.wait(timeout=20)
    server.drain.join(10)
    assert server.proc.stdout is not None and server.proc.stderr is not None
    err = server.proc.stderr.read()
    server.proc.stdout.close()
    server.proc.stderr.close()
    return server.proc.returncode, err


@pytest.fixture
def server() -> Iterator[Server]:
    s = start_server()
    yield s
    if not s.proc.stderr or not s.proc.stderr.closed:
        stop(s, signal.SIGKILL)


def listening_addresses(port: int) -> set[str]:
    """Local addresses listening on ``port``, from /proc/net/tcp and tcp6 (hex, as the kernel shows them)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for row in f:
                local, state = row.split()[1], row.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:
                    found.add(address)
    return found


def gone(pid: int, timeout: float = 10.0) -> bool:
    """True once ``pid`` no longer exists (or is a zombie waiting for its parent)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def vm_hwm_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_prints_url_and_listens_on_loopback_only(server: Server) -> None:
    assert listening_addresses(server.port) == {"0100007F"}  # 127.0.0.1, nothing on tcp6
    with server.client() as client:
        assert client.get("/api/v1/processes").json() == {"processes": []}
        assert client.get("/api/v1/processes", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_given_token_is_used_and_not_printed() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tensorlake_sandbox.local", "--port", "0", "--token", "my-secret-token"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert url is not None
        headers = {"Authorization": "Bearer my-secret-token"}
        assert httpx.get(url.group(0) + "/api/v1/processes", headers=headers, timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
    assert "my-secret-token" not in first + out
    assert proc.returncode == 130


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_shutdown_kills_the_processes_it_started(server: Server, sig: int) -> None:
    with server.client() as client:
        direct = client.post("/api/v1/processes", json={"command": "sleep", "args": ["60"]}).json()["pid"]
        shell = client.post(
            "/api/v1/processes", json={"command": "sh", "args": ["-c", "sleep 60 & echo $!; wait"]}
        ).json()["pid"]
        deadline = time.monotonic() + 10
        while not (lines := client.get(f"/api/v1/processes/{shell}/stdout").json()["lines"]):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        grandchild = int(lines[0])
        # An open follow stream must not hold up the shutdown.
        with client.stream("GET", f"/api/v1/processes/{direct}/output/follow") as follow:
            assert follow.status_code == 200
            assert not gone(grandchild, timeout=0.1)
            began = time.monotonic()
            code, err = stop(server, sig)
    assert time.monotonic() - began < 10
    assert code == (-signal.SIGTERM if sig == signal.SIGTERM else 130)
    assert "Traceback" not in err
    assert gone(direct) and gone(shell) and gone(grandchild)


def test_peak_rss_while_streaming_256_mib_stays_under_100_mib(server: Server) -> None:
    chunk = os.urandom(2 * MIB)
    with server.client() as client:
        pid = client.post(
            "/api/v1/processes", json={"command": "cat", "stdin_mode": "pipe", "stdout_mode": "discard"}
        ).json()["pid"]
        baseline = vm_hwm_kib(server.proc.pid)
        for _ in range(128):
            response = client.post(f"/api/v1/processes/{pid}/stdin", content=chunk)
            assert response.status_code == 204
        assert client.post(f"/api/v1/processes/{pid}/stdin/close").status_code == 204
        peak = vm_hwm_kib(server.proc.pid)
    start_mib, peak_mib = baseline / 1024, peak / 1024
    print(f"\nlocal sandbox server VmHWM: {start_mib:.1f} MiB at start, {peak_mib:.1f} MiB after 256 MiB")
    assert peak < 100 * 1024


def test_one_large_body_is_streamed_not_buffered() -> None:
    # With the limit raised, one 128 MiB body must pass through without being held in memory.
    s = start_server("--max-body-bytes", str(256 * MIB))
    try:
        with s.client() as client:
            pid = client.post(
                "/api/v1/processes", json={"command": "wc", "args": ["-c"], "stdin_mode": "pipe"}
            ).json()["pid"]
            body = bytes(128 * MIB)
            assert client.post(f"/api/v1/processes/{pid}/stdin", content=body).status_code == 204
            del body
            client.post(f"/api/v1/processes/{pid}/stdin/close")
            deadline = time.monotonic() + 10
            while client.get(f"/api/v1/processes/{pid}").json()["status"] == "running":
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert client.get(f"/api/v1/processes/{pid}/stdout").json()["lines"] == [str(128 * MIB)]
            peak = vm_hwm_kib(s.proc.pid)
    finally:
        stop(s)
    print(f"\nlocal sandbox server VmHWM after one 128 MiB body: {peak / 1024:.1f} MiB")
    assert peak < 100 * 1024


def test_token_from_the_environment_is_used_and_not_printed():
    s = start_server(env_token="env-token-123")
    try:
        with s.client() as http:
            assert http.get("/api/v1/processes").status_code == 200
            assert http.get("/api/v1/processes", headers={"Authorization": "Bearer wrong"}).status_code == 401
    finally:
        _, err = stop(s)
    assert "Processes run as your user" in s.banner[-1]
    assert not any("env-token-123" in line for line in [*s.banner, err])
