"""The library's managed processes and errors by resource, against a real local sandbox.

`start(..., name=, restart=, health_check=)`, addressing by name, `restart()`; bad options
refused before anything is sent; `TerminalNotFoundError` for every terminal request (generated
``sandbox_pty_*`` calls included, the resource known from the request path); one `SpawnError`
for a program that cannot start, whatever started it (and for the daemon's 500 on a start).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tensorlake_api_client.api.sandbox_pty import sandbox_pty_get, sandbox_pty_kill, sandbox_pty_resize
from tensorlake_api_client.models import PtyResizeRequest
from tensorlake_sandbox import (
    BadRequestError,
    SandboxClient,
    SpawnError,
    TerminalNotFoundError,
    astart,
    run,
    sandbox_client,
    start,
)
from tensorlake_sandbox._errors import error_for_status
from tensorlake_sandbox._sync._terminal import open_terminal
from tensorlake_sandbox.local import LocalSandbox


@pytest.fixture(scope="module")
def client() -> Iterator[SandboxClient]:
    with LocalSandbox(stop_grace=0.5) as sandbox, sandbox.client() as c:
        yield c


def test_start_with_a_name_is_managed_and_found_by_name(client: SandboxClient) -> None:
    p = start(client, ["sleep", "60"], stdin=False, name="lib-svc", restart="always")
    try:
        assert p.name == "lib-svc"
        info = client.get_httpx_client().get("/api/v1/processes/lib-svc").json()
        assert info["pid"] == p.pid and info["managed"]["restart"]["policy"] == "always"
        first = p.pid
        p.restart()
        assert p.pid != first and p.poll() is None
    finally:
        p.kill()  # stops it for good, although its policy is `always`
    assert p.wait(10) == -15  # SIGTERM first
    info = client.get_httpx_client().get("/api/v1/processes/lib-svc").json()
    assert info["managed"]["status"] == "stopped"


def test_poll_follows_the_current_run_after_an_automatic_restart(client: SandboxClient) -> None:
    p = start(
        client,
        ["sh", "-c", "exit 4"],
        stdin=False,
        name="lib-flaky",
        restart={"max_restarts": 1, "initial_backoff_ms": 10},
    )
    first = p.pid
    deadline = time.monotonic() + 10
    while (
        client.get_httpx_client().get("/api/v1/processes/lib-flaky").json()["managed"]["status"] != "stopped"
    ):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert p.poll() == 4 and p.pid != first


def test_restart_of_an_unmanaged_process_is_a_bad_request(client: SandboxClient) -> None:
    with start(client, ["sleep", "30"], stdin=False) as p:
        assert p.name is None
        with pytest.raises(BadRequestError) as info:
            p.restart()
        assert info.value.code == "NOT_MANAGED"
        p.kill()


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"name": "12"}, ValueError),
        ({"name": "a/b"}, ValueError),
        ({"name": 5}, TypeError),
        ({"restart": "sometimes"}, ValueError),
        ({"restart": {"policy": "never", "retries": 3}}, ValueError),
        ({"restart": 3}, TypeError),
        ({"health_check": {"type": "udp", "port": 1}}, ValueError),
        ({"health_check": {"type": "tcp"}}, ValueError),
        ({"health_check": {"type": "tcp", "port": 70000}}, ValueError),
    ],
)
def test_bad_managed_options_are_refused_before_sending(
    recorder: Any, options: dict[str, Any], error: type
) -> None:
    c = sandbox_client(base_url=recorder.url, api_key="k")
    with pytest.raises(error):
        start(c, ["true"], **options)
    with pytest.raises(error):
        asyncio.run(astart(c, ["true"], **options))
    assert recorder.requests == []


def test_generated_terminal_calls_raise_terminal_not_found(client: SandboxClient) -> None:
    for call in (
        lambda: sandbox_pty_get.sync("no-such-session", client=client),
        lambda: sandbox_pty_kill.sync_detailed("no-such-session", client=client),
        lambda: sandbox_pty_resize.sync_detailed(
            "no-such-session", client=client, body=PtyResizeRequest(rows=10, cols=10)
        ),
    ):
        with pytest.raises(TerminalNotFoundError) as info:
            call()
        assert info.value.status_code == 404


def test_a_missing_program_is_one_spawn_error_whatever_started_it(client: SandboxClient) -> None:
    errors = []
    for starter in (
        lambda: start(client, ["no-such-program-tl"], stdin=False),
        lambda: run(client, ["no-such-program-tl"]),
        lambda: open_terminal(client, "no-such-program-tl"),
    ):
        with pytest.raises(SpawnError) as info:
            starter()
        errors.append(info.value)
    assert all(isinstance(e, BadRequestError) and e.code == "SPAWN_FAILED" for e in errors)
    assert len({e.message for e in errors}) == 1


def test_the_daemons_500_on_a_start_path_is_a_spawn_error() -> None:
    # Tensorlake's daemon answers a failed start with 500 {"error"} and no code.
    body = b'{"error": "No such file or directory (os error 2)"}'
    for path in ("/api/v1/processes", "/api/v1/processes/run", "/api/v1/pty"):
        assert type(error_for_status(500, body, path=path)) is SpawnError
    assert type(error_for_status(500, body, path="/api/v1/processes/12/stdout")) is not SpawnError
    assert type(error_for_status(404, b"{}", path="/api/v1/pty/abc/resize")) is TerminalNotFoundError
    assert type(error_for_status(404, b"{}", path="/api/v1/processes/12")) is not TerminalNotFoundError
