"""Managed processes in the local sandbox, over real HTTP on 127.0.0.1 with real processes.

What Tensorlake's official SDK (0.5.163) sends and expects: a start with ``name``,
``restart`` or ``health_check`` makes the process managed (``managed`` in ProcessInfo); it
is addressed by name in every ``/processes/{pid}`` route; the supervisor restarts it per its
policy with exponential backoff and after failed health checks; ``POST .../restart`` restarts
it; kill stops it for good (SIGTERM, SIGKILL after the grace).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tensorlake_sandbox.local import LocalSandbox

STOP_GRACE = 0.5


@pytest.fixture(scope="module")
def sandbox() -> Iterator[LocalSandbox]:
    with LocalSandbox(stop_grace=STOP_GRACE) as sb:
        yield sb


@pytest.fixture
def http(sandbox: LocalSandbox) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {sandbox.token}"}
    with httpx.Client(base_url=sandbox.base_url, headers=headers, timeout=20) as client:
        yield client
        for proc in client.get("/api/v1/processes").json()["processes"]:
            managed = proc["managed"]
            if proc["status"] == "running" or (managed and managed["status"] != "stopped"):
                client.delete(f"/api/v1/processes/{proc['pid']}")


def until(what: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll ``what`` until it returns something truthy (the server's own timers are awaited)."""
    deadline = time.monotonic() + timeout
    while not (result := what()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return result


def start(http: httpx.Client, *argv: str, **fields: Any) -> dict[str, Any]:
    response = http.post("/api/v1/processes", json={"command": argv[0], "args": list(argv[1:]), **fields})
    assert response.status_code == 201, response.text
    info: dict[str, Any] = response.json()
    return info


def get(http: httpx.Client, key: int | str) -> dict[str, Any]:
    response = http.get(f"/api/v1/processes/{quote(str(key), safe='')}")
    assert response.status_code == 200, response.text
    info: dict[str, Any] = response.json()
    return info


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_a_named_process_is_managed_and_addressed_by_name_in_every_route(http: httpx.Client) -> None:
    name = "web server é 1"  # any characters but '/', percent-encoded in the path
    info = start(http, "cat", name=name, stdin_mode="pipe")
    managed = info["managed"]
    assert managed["name"] == managed["id"] == name and managed["status"] == "running"
    assert managed["restart"] == {
        "policy": "on_failure",
        "max_restarts": None,
        "initial_backoff_ms": 500,
        "max_backoff_ms": 30000,
    }
    assert (managed["health_status"], managed["restart_count"], info["oom_killed"]) == ("disabled", 0, False)
    path = f"/api/v1/processes/{quote(name, safe='')}"
    assert get(http, name)["pid"] == info["pid"]
    assert http.post(path + "/stdin", content=b"hello\n").status_code == 204
    until(lambda: http.get(path + "/stdout").json()["lines"] == ["hello"])
    assert http.get(path + "/output").json()["pid"] == info["pid"]
    assert http.post(path + "/signal", json={"signal": 18}).json() == {"success": True}
    listed = {p["pid"]: p for p in http.get("/api/v1/processes").json()["processes"]}
    assert listed[info["pid"]]["managed"]["name"] == name
    assert http.delete(path).status_code == 204
    assert get(http, name)["managed"]["status"] == "stopped"


def test_an_unmanaged_process_has_no_managed_field_and_cannot_be_restarted(http: httpx.Client) -> None:
    info = start(http, "sleep", "30")
    assert info["managed"] is None
    response = http.post(f"/api/v1/processes/{info['pid']}/restart")
    assert response.status_code == 400 and response.json()["code"] == "NOT_MANAGED"
    assert http.post("/api/v1/processes/no-such-name/restart").status_code == 404


def test_on_failure_restarts_with_doubling_backoff_up_to_max_restarts(http: httpx.Client) -> None:
    restart = {"policy": "on_failure", "max_restarts": 3, "initial_backoff_ms": 100, "max_backoff_ms": 250}
    first = start(http, "sh", "-c", "echo run; exit 3", name="flaky", restart=restart)
    final = until(lambda: (i := get(http, "flaky"))["managed"]["status"] == "stopped" and i)
    managed = final["managed"]
    assert managed["restart_count"] == 3 and final["pid"] != first["pid"]
    assert managed["last_exit"]["exit_code"] == 3 and managed["next_restart_at"] is None
    # The runs' start times: the waits before restarts 1, 2, 3 were at least 100, 200, 250 ms.
    handles = sorted(p for p in http.get("/api/v1/processes").json()["processes"] if p["command"] == "sh")
    assert len(handles) == 1  # earlier runs are replaced, not listed
    assert final["started_at"] - first["started_at"] >= 100 + 200 + 250


def test_on_failure_does_not_restart_a_clean_exit_but_always_does(http: httpx.Client) -> None:
    start(http, "true", name="clean", restart={"initial_backoff_ms": 10})
    done = until(lambda: (i := get(http, "clean"))["managed"]["status"] == "stopped" and i)
    assert done["managed"]["restart_count"] == 0 and done["exit_code"] == 0
    start(
        http, "true", name="again", restart={"policy": "always", "max_restarts": 2, "initial_backoff_ms": 10}
    )
    done = until(lambda: (i := get(http, "again"))["managed"]["status"] == "stopped" and i)
    assert done["managed"]["restart_count"] == 2


def test_never_means_no_restart(http: httpx.Client) -> None:
    start(http, "sh", "-c", "exit 1", name="once", restart={"policy": "never"})
    done = until(lambda: (i := get(http, "once"))["managed"]["status"] == "stopped" and i)
    assert done["managed"]["restart_count"] == 0 and done["exit_code"] == 1


def test_a_failing_tcp_health_check_restarts_the_process(http: httpx.Client) -> None:
    check = {
        "type": "tcp",
        "port": free_port(),
        "initial_delay_ms": 0,
        "interval_ms": 20,
        "failure_threshold": 2,
    }
    first = start(
        http, "sleep", "60", name="unhealthy", health_check=check, restart={"initial_backoff_ms": 10}
    )
    assert first["managed"]["health_check"]["port"] == check["port"]
    restarted = until(lambda: (i := get(http, "unhealthy"))["managed"]["restart_count"] >= 1 and i)
    assert restarted["pid"] != first["pid"]
    assert restarted["managed"]["last_exit"]["signal"] == 9  # the unhealthy run was killed


def test_a_passing_http_health_check_is_healthy(http: httpx.Client) -> None:
    port = free_port()
    server = (
        "import http.server as s\n"
        "class H(s.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200 if self.path == '/ok' else 500); self.end_headers()\n"
        "    def log_message(self, *a): pass\n"
        f"s.HTTPServer(('127.0.0.1', {port}), H).serve_forever()\n"
    )
    # A generous threshold: the checks begin while Python is still starting the server.
    check = {
        "type": "http",
        "port": port,
        "path": "/ok",
        "initial_delay_ms": 0,
        "interval_ms": 20,
        "failure_threshold": 500,
    }
    start(http, "python3", "-c", server, name="healthy", health_check=check)
    info = until(lambda: (i := get(http, "healthy"))["managed"]["health_status"] == "healthy" and i)
    assert info["managed"]["restart_count"] == 0 and info["managed"]["consecutive_health_failures"] == 0


def test_kill_stops_for_good_with_sigterm_first(http: httpx.Client) -> None:
    script = "trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.05; done"
    start(http, "sh", "-c", script, name="graceful", restart={"policy": "always", "initial_backoff_ms": 10})
    until(lambda: http.get("/api/v1/processes/graceful/stdout").json()["lines"] == ["ready"])
    assert http.delete("/api/v1/processes/graceful").status_code == 204
    done = until(lambda: (i := get(http, "graceful"))["status"] != "running" and i)
    assert done["exit_code"] == 0 and done["managed"]["status"] == "stopped"
    assert done["managed"]["restart_count"] == 0  # policy `always`, yet not restarted
    assert http.get("/api/v1/processes/graceful/stdout").json()["lines"] == ["ready", "got-term"]


def test_kill_sends_sigkill_after_the_grace_to_a_process_ignoring_sigterm(http: httpx.Client) -> None:
    script = "trap '' TERM; echo ready; while :; do sleep 0.05; done"
    start(http, "sh", "-c", script, name="stubborn")
    until(lambda: http.get("/api/v1/processes/stubborn/stdout").json()["lines"] == ["ready"])
    began = time.monotonic()
    http.delete("/api/v1/processes/stubborn")
    done = until(lambda: (i := get(http, "stubborn"))["status"] != "running" and i)
    assert done["signal"] == 9 and time.monotonic() - began >= STOP_GRACE


def test_restart_gives_a_new_pid_and_counts(http: httpx.Client) -> None:
    first = start(http, "sleep", "60", name="svc")
    response = http.post("/api/v1/processes/svc/restart")
    assert response.status_code == 200, response.text
    again = response.json()
    assert again["pid"] != first["pid"] and again["status"] == "running"
    assert again["managed"]["restart_count"] == 1 and again["managed"]["last_exit"]["signal"] == 15
    assert get(http, "svc")["pid"] == again["pid"]
    assert http.get(f"/api/v1/processes/{first['pid']}").status_code == 404  # the old run is gone


def test_a_taken_name_is_409_until_the_process_is_stopped(http: httpx.Client) -> None:
    start(http, "sleep", "60", name="unique")
    taken = http.post("/api/v1/processes", json={"command": "true", "name": "unique"})
    assert taken.status_code == 409 and taken.json()["code"] == "NAME_TAKEN"
    http.delete("/api/v1/processes/unique")
    until(lambda: get(http, "unique")["status"] != "running")
    assert start(http, "true", name="unique")["managed"]["name"] == "unique"


@pytest.mark.parametrize("name", ["", "123", "a/b", "run", 7])
def test_invalid_names_are_400(http: httpx.Client, name: object) -> None:
    response = http.post("/api/v1/processes", json={"command": "true", "name": name})
    assert response.status_code == 400 and response.json()["code"] == "BAD_REQUEST", response.text


@pytest.mark.parametrize(
    "fields",
    [
        {"restart": {"policy": "sometimes"}},
        {"restart": {"initial_backoff_ms": -1}},
        {"restart": "always"},
        {"health_check": {"type": "udp", "port": 80}},
        {"health_check": {"type": "tcp", "port": 0}},
        {"health_check": {"type": "http", "port": 80, "path": "no-slash"}},
    ],
)
def test_invalid_restart_and_health_check_are_400(http: httpx.Client, fields: dict[str, Any]) -> None:
    response = http.post("/api/v1/processes", json={"command": "true", **fields})
    assert response.status_code == 400 and response.json()["code"] == "BAD_REQUEST", response.text
