"""Issue #10 against ``python -m tensorlake_sandbox.local`` as a real subprocess: what happens to the
processes it started when it is hung up on, killed, or its Python host exits; its memory under
output floods; and what it prints (quiet logs, URLs, a busy port, a missing extra).
"""

from __future__ import annotations

import resource
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tensorlake_sandbox.local._server import _url

from .test_local_server import Server, gone, start_server, stop, vm_hwm_kib

MIB = 1024 * 1024


def start_tree(client: httpx.Client) -> tuple[int, int, int]:
    """A direct child, and a shell with a background grandchild: (direct, shell, grandchild)."""
    direct = client.post("/api/v1/processes", json={"command": "sleep", "args": ["60"]}).json()["pid"]
    shell = client.post(
        "/api/v1/processes", json={"command": "sh", "args": ["-c", "sleep 60 & echo $!; wait"]}
    ).json()["pid"]
    deadline = time.monotonic() + 10
    while not (lines := client.get(f"/api/v1/processes/{shell}/stdout").json()["lines"]):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    return direct, shell, int(lines[0])


def test_sighup_stops_the_server_and_kills_everything_it_started() -> None:
    server = start_server()
    with server.client() as client:
        pids = start_tree(client)
    code, err = stop(server, signal.SIGHUP)
    assert code == 128 + signal.SIGHUP
    assert "Traceback" not in err
    assert all(gone(pid) for pid in pids)


def test_processes_die_with_a_sigkilled_server() -> None:
    server = start_server()
    with server.client() as client:
        direct = client.post("/api/v1/processes", json={"command": "sleep", "args": ["60"]}).json()["pid"]
        shell = client.post("/api/v1/processes", json={"command": "sh", "args": ["-c", "sleep 60"]}).json()[
            "pid"
        ]
    stop(server, signal.SIGKILL)
    # PR_SET_PDEATHSIG: the processes it started directly get SIGKILL with it.
    assert gone(direct) and gone(shell)


def test_an_unstopped_local_sandbox_is_cleaned_up_at_interpreter_exit() -> None:
    script = (
        "import httpx\n"
        "from tensorlake_sandbox.local import LocalSandbox\n"
        "sb = LocalSandbox().start()\n"
        "h = {'Authorization': 'Bearer ' + sb.token}\n"
        "r = httpx.post(sb.base_url + '/api/v1/processes', headers=h,\n"
        "               json={'command': 'sh', 'args': ['-c', 'sleep 60 & echo $!; wait']})\n"
        "pid = r.json()['pid']\n"
        "import time\n"
        "url = f'{sb.base_url}/api/v1/processes/{pid}/stdout'\n"
        "while not (lines := httpx.get(url, headers=h).json()['lines']):\n"
        "    time.sleep(0.02)\n"
        "print(pid, lines[0], flush=True)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    leader, grandchild = (int(p) for p in done.stdout.split())
    assert gone(leader) and gone(grandchild)
    assert "Traceback" not in done.stderr


def _trivial_latencies(server: Server, pid: int, stop_event: threading.Event, out: list[float]) -> None:
    with server.client() as client:
        while not stop_event.is_set():
            began = time.monotonic()
            assert client.get(f"/api/v1/processes/{pid}").status_code == 200
            out.append(time.monotonic() - began)
            time.sleep(0.01)


def test_output_floods_stay_within_250_mib_and_reads_do_not_block_the_server() -> None:
    server = start_server()
    try:
        with server.client() as client:
            baseline = vm_hwm_kib(server.proc.pid)
            empties = [
                client.post(
                    "/api/v1/processes", json={"command": "sh", "args": ["-c", "yes '' | head -n 1100000"]}
                ).json()["pid"]
                for _ in range(8)
            ]
            invalid = client.post(
                "/api/v1/processes",
                json={"command": "sh", "args": ["-c", "head -c 100000000 /dev/zero | tr '\\0' '\\377'"]},
            ).json()["pid"]
            for pid in [*empties, invalid]:
                deadline = time.monotonic() + 60
                while client.get(f"/api/v1/processes/{pid}").json()["status"] == "running":
                    assert time.monotonic() < deadline
                    time.sleep(0.05)
            # The newest lines are kept, within the per-process budget.
            last = client.get(f"/api/v1/processes/{empties[-1]}/stdout").json()
            assert last["line_count"] == len(last["lines"]) > 500_000
            assert set(last["lines"]) == {""}
            # Trivial requests on their own, then during a large /output read.
            idle = []
            for _ in range(10):
                began = time.monotonic()
                client.get(f"/api/v1/processes/{invalid}")
                idle.append(time.monotonic() - began)
            latencies: list[float] = []
            stop_event = threading.Event()
            prober = threading.Thread(
                target=_trivial_latencies, args=(server, invalid, stop_event, latencies)
            )
            prober.start()
            began = time.monotonic()
            received = 0
            try:
                with client.stream("GET", f"/api/v1/processes/{invalid}/output") as response:
                    for chunk in response.iter_bytes():
                        received += len(chunk)
                        time.sleep(0.001)  # a client that reads at its own pace
            finally:
                read_seconds = time.monotonic() - began
                stop_event.set()
                prober.join(30)
            peak = vm_hwm_kib(server.proc.pid)
    finally:
        stop(server)
    worst, median = max(latencies), sorted(latencies)[len(latencies) // 2]
    print(
        f"\nlocal sandbox VmHWM: {baseline / 1024:.1f} MiB at start, {peak / 1024:.1f} MiB peak; "
        f"/output of {received / MIB:.1f} MiB took {read_seconds:.2f} s; {len(latencies)} trivial requests "
        f"meanwhile, worst {worst * 1000:.1f} ms, median {median * 1000:.1f} ms "
        f"(without a read: median {sorted(idle)[5] * 1000:.1f} ms)"
    )
    assert received > 16 * MIB  # 12-16 MiB of U+FFFD, 3 bytes each in UTF-8
    assert peak < 250 * 1024
    # Issue #10's figure is 0.2 s; on a loaded 2-core machine (and the suite runs on 4 workers)
    # single samples can stall, so the median must meet it and the worst stay well under the ~3 s
    # the old server blocked for.
    assert len(latencies) >= 5 and median < 0.2 and worst < 1.0


def test_logs_are_quiet_by_default_and_requests_logged_on_demand() -> None:
    quiet = start_server()
    with quiet.client() as client:
        for _ in range(20):
            client.get("/api/v1/processes")
    _, err = stop(quiet)
    assert err == ""
    loud = subprocess.Popen(
        [sys.executable, "-m", "tensorlake_sandbox.local", "--port", "0", "--log-requests", "--token", "tk"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert loud.stdout is not None
    url = loud.stdout.readline().split()[-1]
    assert httpx.get(url + "/api/v1/processes", headers={"Authorization": "Bearer tk"}).status_code == 200
    loud.send_signal(signal.SIGTERM)
    out, err = loud.communicate(timeout=20)
    assert '"GET /api/v1/processes HTTP/1.1" 200' in out + err


def test_the_printed_url_is_reachable_for_a_wildcard_address() -> None:
    class FakeSocket:
        def __init__(self, name: tuple[str, int]) -> None:
            self.name = name

        def getsockname(self) -> tuple[str, int]:
            return self.name

    assert _url(FakeSocket(("0.0.0.0", 8500))) == "http://127.0.0.1:8500"  # type: ignore[arg-type]
    assert _url(FakeSocket(("::", 8500))) == "http://[::1]:8500"  # type: ignore[arg-type]
    assert _url(FakeSocket(("127.0.0.1", 1))) == "http://127.0.0.1:1"  # type: ignore[arg-type]


def test_a_busy_port_suggests_port_0() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "tensorlake_sandbox.local", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "--port 0" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("entry", ["python -m", "cli"])
def test_without_the_local_extra_one_line_names_the_pip_command(entry: str) -> None:
    run = (
        "import runpy; runpy.run_module('tensorlake_sandbox.local', run_name='__main__')"
        if entry == "python -m"
        else "from tensorlake_sandbox.cli import main; raise SystemExit(main(['local']))"
    )
    script = f"import sys; sys.modules['uvicorn'] = None; sys.argv = ['x']; {run}"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert 'pip install "tensorlake-sandbox-client[local]"' in done.stderr


def test_the_server_environment_token_is_not_inherited() -> None:
    server = start_server(env_token="env-token-xyz")
    try:
        with server.client() as client:
            pid = client.post("/api/v1/processes", json={"command": "env"}).json()["pid"]
            deadline = time.monotonic() + 10
            while client.get(f"/api/v1/processes/{pid}").json()["status"] == "running":
                assert time.monotonic() < deadline
                time.sleep(0.02)
            lines = client.get(f"/api/v1/processes/{pid}/stdout").json()["lines"]
    finally:
        stop(server)
    assert any(line.startswith("PATH=") for line in lines)
    assert not any("env-token-xyz" in line or line.startswith("TENSORLAKE_") for line in lines)


def test_idle_connections_cannot_starve_a_client_under_a_low_fd_limit() -> None:
    def low_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    proc = subprocess.Popen(
        [sys.executable, "-m", "tensorlake_sandbox.local", "--port", "0", "--token", "tk"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=low_fd_limit,
    )
    idle: list[socket.socket] = []
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        port = int(url.rsplit(":", 1)[1])
        for _ in range(130):  # unauthenticated, never sending a byte
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        began = time.monotonic()
        response = httpx.get(url + "/api/v1/processes", headers={"Authorization": "Bearer tk"}, timeout=10)
        assert response.status_code == 200 and time.monotonic() - began < 5
    finally:
        for s in idle:
            s.close()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert "out of system resource" not in err and len(err) < 2000, err[:2000]
