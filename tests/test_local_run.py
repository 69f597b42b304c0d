"""Issue #9, item 4: the local sandbox's fidelity to the documented process API.

`POST /processes/run` (named SSE events start, output, exit; timeout kills the whole tree),
health and info, `user` accepted only when it is the current user, signals to the process
group, and `Host: <name>.local` as Tensorlake's official SDK sends it to a localhost proxy.
"""

from __future__ import annotations

import json
import os
import pwd
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from tensorlake_sandbox.local import LocalSandbox

from .test_local_hardening import alive, start, wait_final


@pytest.fixture
def http(local_sandbox: LocalSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=local_sandbox.base_url,
        headers={"Authorization": f"Bearer {local_sandbox.token}"},
        timeout=30,
    ) as client:
        yield client


def run_events(http: httpx.Client, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    with connect_sse(http, "POST", "/api/v1/processes/run", json=body) as source:
        assert source.response.status_code == 200, source.response.read()
        assert source.response.headers["content-type"].startswith("text/event-stream")
        return [(e.event, json.loads(e.data)) for e in source.iter_sse()]


def test_run_streams_start_output_and_exit_events(http: httpx.Client) -> None:
    began_ms = time.time_ns() // 1_000_000
    events = run_events(http, {"command": "sh", "args": ["-c", "echo out; echo err >&2; echo more; exit 3"]})
    (name, first), *middle, (last_name, last) = events
    assert (
        name == "start" and set(first) == {"handle", "pid", "started_at"} and first["started_at"] >= began_ms
    )
    assert {n for n, _ in middle} == {"output"}
    lines = [(d["stream"], d["line"]) for _, d in middle]
    assert sorted(lines) == [("stderr", "err"), ("stdout", "more"), ("stdout", "out")]
    assert [line for line in lines if line[0] == "stdout"] == [("stdout", "out"), ("stdout", "more")]
    assert all(isinstance(d["timestamp"], int) for _, d in middle)
    assert last_name == "exit"
    assert last == {"exit_code": 3, "signal": None, "oom_killed": False, "reason": "exited"}
    # The process is listed like a started one.
    assert http.get(f"/api/v1/processes/{first['pid']}").json()["exit_code"] == 3


def test_run_reports_a_signal(http: httpx.Client) -> None:
    *_, (_, last) = run_events(http, {"command": "sh", "args": ["-c", "kill -TERM $$"]})
    assert last == {"exit_code": None, "signal": 15, "oom_killed": False, "reason": "signaled"}


def test_run_has_stdin_closed_and_captures_output_whatever_was_asked(http: httpx.Client) -> None:
    body = {"command": "cat", "stdin_mode": "pipe", "stdout_mode": "discard", "timeout": 20}
    events = run_events(http, body)
    assert events[-1] == ("exit", {"exit_code": 0, "signal": None, "oom_killed": False, "reason": "exited"})
    events = run_events(http, {"command": "echo", "args": ["kept"], "stdout_mode": "discard"})
    assert ("output", "kept") in [(n, d.get("line")) for n, d in events]


def test_run_timeout_kills_the_whole_tree_and_says_timed_out(http: httpx.Client) -> None:
    began = time.monotonic()
    events = run_events(
        http, {"command": "sh", "args": ["-c", "sleep 30 & echo $!; sleep 30; echo never"], "timeout": 1}
    )
    assert time.monotonic() - began < 15  # 1 s and a kill; without the timeout, 30 s
    grandchild = int(events[1][1]["line"])
    assert events[-1] == (
        "exit",
        {"exit_code": None, "signal": 9, "oom_killed": False, "reason": "timed_out"},
    )
    assert "never" not in [d.get("line") for _, d in events]
    deadline = time.monotonic() + 10
    while alive(grandchild):
        assert time.monotonic() < deadline, "the background child outlived the run's timeout"
        time.sleep(0.02)


def test_a_run_whose_client_goes_away_is_killed(http: httpx.Client) -> None:
    with connect_sse(
        http, "POST", "/api/v1/processes/run", json={"command": "sleep", "args": ["30"]}
    ) as source:
        pid = json.loads(next(source.iter_sse()).data)["pid"]
    info = wait_final(http, pid)
    assert (info["status"], info["signal"]) == ("signaled", 9)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"args": ["x"]}, "command is required"),
        ({"command": "true", "timeout": 0}, "timeout must be"),
        ({"command": "true", "timeout": 1.5}, "timeout must be"),
        ({"command": "true", "timeout": "5"}, "timeout must be"),
        ({"command": "no-such-command-xyz"}, "cannot start"),
    ],
)
def test_run_refuses_bad_requests_with_400(http: httpx.Client, body: dict[str, Any], message: str) -> None:
    response = http.post("/api/v1/processes/run", json=body)
    assert response.status_code == 400 and message in response.json()["error"]


def test_run_is_not_taken_for_a_pid(http: httpx.Client) -> None:
    assert http.get("/api/v1/processes/run").status_code == 405
    assert http.post("/api/v1/processes/run/signal", json={"signal": 15}).status_code == 404


def test_health_and_info(http: httpx.Client) -> None:
    assert http.get("/api/v1/health").json() == {"healthy": True}
    before = http.get("/api/v1/info").json()
    assert isinstance(before["version"], str) and before["version"]
    assert isinstance(before["uptime_secs"], int | float) and before["uptime_secs"] >= 0
    pid = start(http, "sleep", "30")
    during = http.get("/api/v1/info").json()
    assert during["total_processes"] == before["total_processes"] + 1
    assert during["running_processes"] == before["running_processes"] + 1
    assert during["uptime_secs"] >= before["uptime_secs"]
    http.delete(f"/api/v1/processes/{pid}")
    wait_final(http, pid)
    assert http.get("/api/v1/info").json()["running_processes"] == before["running_processes"]


def _me() -> tuple[str, int, int]:
    return pwd.getpwuid(os.getuid()).pw_name, os.getuid(), os.getgid()


def test_the_current_user_is_accepted_in_every_documented_form(http: httpx.Client) -> None:
    name, uid, gid = _me()
    for user in (name, str(uid), f"{uid}:{gid}", {"name": name}, {"uid": uid, "gid": gid}):
        pid = start(http, "id", "-u", user=user)
        wait_final(http, pid)
        assert http.get(f"/api/v1/processes/{pid}/stdout").json()["lines"] == [str(uid)], user
        events = run_events(http, {"command": "id", "args": ["-u"], "user": user})
        assert ("output", str(uid)) in [(n, d.get("line")) for n, d in events]


def test_any_other_user_is_refused_with_a_clear_400(http: httpx.Client) -> None:
    name, uid, gid = _me()
    others: list[Any] = [
        "tl-user",
        str(uid + 1),
        f"{uid}:{gid + 1}",
        {"name": "tl-user"},
        {"uid": uid + 1, "gid": gid},
    ]
    malformed: list[Any] = [None, 5, "", {"uid": uid}, {"name": name, "uid": uid, "gid": gid}, ["x"]]
    for path in ("/api/v1/processes", "/api/v1/processes/run"):
        for user in others:
            response = http.post(path, json={"command": "true", "user": user})
            assert response.status_code == 400, (path, user)
            error = response.json()["error"]
            assert "is not available" in error and f"{name!r} (uid {uid}, gid {gid})" in error
        for user in malformed:
            response = http.post(path, json={"command": "true", "user": user})
            assert response.status_code == 400 and "user" in response.json()["error"], (path, user)


def test_signals_go_to_the_process_group(http: httpx.Client) -> None:
    pid = start(http, "sh", "-c", "sleep 30 & echo $!; wait")
    deadline = time.monotonic() + 10
    while not (lines := http.get(f"/api/v1/processes/{pid}/stdout").json()["lines"]):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child = int(lines[0])
    assert http.post(f"/api/v1/processes/{pid}/signal", json={"signal": 15}).json() == {"success": True}
    info = wait_final(http, pid)
    assert (info["status"], info["signal"]) == ("signaled", 15)
    deadline = time.monotonic() + 10
    while alive(child):
        assert time.monotonic() < deadline, "the signal did not reach the rest of the group"
        time.sleep(0.02)


def test_the_official_sdks_local_host_name_is_accepted_with_the_token(local_sandbox: LocalSandbox) -> None:
    url = local_sandbox.base_url + "/api/v1/processes"
    good = {"Authorization": f"Bearer {local_sandbox.token}"}
    for host in ("my-sbx.local", "sbx_01JABC.local", "My-Sbx.local."):
        assert httpx.get(url, headers={**good, "Host": host}).status_code == 200, host
        assert httpx.get(url, headers={"Host": host}).status_code == 401, host
    for host in (
        "a.b.local",
        "evil.example",
        "local",
        ".local",
        "x.local.evil.example",
        "x.localhost.example",
    ):
        assert httpx.get(url, headers={**good, "Host": host}).status_code == 421, host


def test_the_official_sdk_drives_the_local_sandbox_unchanged(local_sandbox: LocalSandbox) -> None:
    import tensorlake.sandbox as sdk  # pinned in the dev group
    from tensorlake.sandbox.models import StdinMode

    sandbox = sdk.Sandbox("my-sbx", proxy_url=local_sandbox.base_url, api_key=local_sandbox.token)
    result = sandbox.run("sh", ["-c", "echo out; echo err >&2; exit 42"])
    assert (result.exit_code, result.stdout, result.stderr) == (42, "out", "err")
    timed_out = sandbox.run("sleep", ["30"], timeout=1)
    assert timed_out.exit_code == -9 and timed_out.reason.value == "timed_out"
    process = sandbox.start_process("cat", stdin_mode=StdinMode.PIPE)
    sandbox.write_stdin(process.pid, b"hello\nworld\n")
    sandbox.close_stdin(process.pid)
    assert [event.line for event in sandbox.follow_stdout(process.pid)] == ["hello", "world"]
    assert sandbox.get_stdout(process.pid).lines == ["hello", "world"]
