"""The local sandbox's process API through the GENERATED functions and the shim client.

Each operation of openapi.yaml: its success answer and its error codes (typed errors from
the shim, JSON bodies with ``code``), on a real server with real processes; plus the curl
example from the stdin docs.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from tensorlake_api_client.api.sandbox_processes import (
    sandbox_process_close_stdin,
    sandbox_process_get,
    sandbox_process_kill,
    sandbox_process_list,
    sandbox_process_output,
    sandbox_process_signal,
    sandbox_process_start,
    sandbox_process_stderr,
    sandbox_process_stdin,
    sandbox_process_stdout,
)
from tensorlake_api_client.models import (
    ProcessInfo,
    SendSignalRequest,
    StartProcessRequest,
)
from tensorlake_api_client.types import File
from tensorlake_sandbox import (
    BadRequestError,
    ProcessNotFoundError,
    SandboxClient,
    SpawnError,
    StdinNotWritableError,
)
from tensorlake_sandbox.local import LocalSandbox

from .conftest import StartFn

# A pid no process has: above the kernel's pid_max limit (4194304).
MISSING_PID = 2_000_000_000

Wait = Callable[[int], ProcessInfo]


def write(client: SandboxClient, pid: int, data: bytes) -> int:
    response = sandbox_process_stdin.sync_detailed(pid, client=client, body=File(payload=io.BytesIO(data)))
    return int(response.status_code)


def stdout_lines(client: SandboxClient, pid: int) -> list[str]:
    out = sandbox_process_stdout.sync(pid, client=client)
    assert out.pid == pid
    assert out.line_count == len(out.lines)
    return out.lines


# -- start ------------------------------------------------------------------------------------


def test_start_returns_201_and_process_info(local_client: SandboxClient, start_process: StartFn) -> None:
    response = sandbox_process_start.sync_detailed(
        client=local_client, body=StartProcessRequest(command="sleep", args=["30"])
    )
    assert response.status_code == 201
    info = response.parsed
    sandbox_process_kill.sync_detailed(info.pid, client=local_client)
    assert info.status == "running"
    assert info.command == "sleep" and info.args == ["30"]
    assert info.stdin_writable is False  # stdin_mode defaults to closed
    assert info.exit_code is None and info.signal is None and info.ended_at is None
    assert abs(info.started_at - time.time() * 1000) < 60_000  # milliseconds
    assert isinstance(info.handle, int)
    later = start_process("true")
    assert isinstance(later.handle, int) and later.handle > info.handle


def test_start_unknown_command_is_400_json(local_client: SandboxClient) -> None:
    with pytest.raises(BadRequestError) as caught:
        sandbox_process_start.sync_detailed(
            client=local_client, body=StartProcessRequest(command="no-such-command-tl-test")
        )
    assert caught.value.status_code == 400
    assert caught.value.code == "SPAWN_FAILED" and isinstance(caught.value, SpawnError)
    assert "no-such-command-tl-test" in caught.value.message


def test_start_bad_working_dir_is_400(local_client: SandboxClient) -> None:
    with pytest.raises(BadRequestError):
        sandbox_process_start.sync_detailed(
            client=local_client,
            body=StartProcessRequest(command="true", working_dir="/no/such/dir/tl-test"),
        )


def test_start_env_is_merged_and_working_dir_applies(
    start_process: StartFn, wait_finished: Wait, local_client: SandboxClient, tmp_path: os.PathLike[str]
) -> None:
    info = start_process(
        "sh",
        "-c",
        'echo "$TL_TEST_VAR"; echo "$PATH"; pwd',
        env={"TL_TEST_VAR": "hi"},
        working_dir=str(tmp_path),
    )
    assert wait_finished(info.pid).exit_code == 0
    var, path, cwd = stdout_lines(local_client, info.pid)
    assert var == "hi"
    assert path == os.environ["PATH"]  # the server's environment is kept under the given variables
    assert os.path.realpath(cwd) == os.path.realpath(tmp_path)


def test_discarded_output_is_not_captured(
    start_process: StartFn, wait_finished: Wait, local_client: SandboxClient
) -> None:
    info = start_process("sh", "-c", "echo out; echo err >&2", stdout="discard")
    wait_finished(info.pid)
    assert stdout_lines(local_client, info.pid) == []
    err = sandbox_process_stderr.sync(info.pid, client=local_client)
    assert err.lines == ["err"]


# -- list / get -------------------------------------------------------------------------------


def test_list_keeps_exited_processes(
    start_process: StartFn, wait_finished: Wait, local_client: SandboxClient
) -> None:
    done = start_process("sh", "-c", "exit 3")
    final = wait_finished(done.pid)
    assert (final.status, final.exit_code, final.signal) == ("exited", 3, None)
    assert isinstance(final.ended_at, int) and final.ended_at >= final.started_at
    running = start_process("sleep", "30")
    listed = sandbox_process_list.sync(client=local_client)
    by_pid = {p.pid: p for p in listed.processes}
    assert by_pid[done.pid].status == "exited"
    assert by_pid[running.pid].status == "running"


def test_get_unknown_pid_is_404(local_client: SandboxClient) -> None:
    with pytest.raises(ProcessNotFoundError) as caught:
        sandbox_process_get.sync_detailed(MISSING_PID, client=local_client)
    assert caught.value.status_code == 404 and caught.value.code == "NOT_FOUND"


# -- signal / kill ----------------------------------------------------------------------------


def test_signal_terminates_and_reports_signaled(
    start_process: StartFn, wait_finished: Wait, local_client: SandboxClient
) -> None:
    info = start_process("sleep", "30")
    response = sandbox_process_signal.sync_detailed(
        info.pid, client=local_client, body=SendSignalRequest(signal=15)
    )
    assert response.status_code == 200
    assert response.parsed.success is True
    final = wait_finished(info.pid)
    assert (final.status, final.signal, final.exit_code) == ("signaled", 15, None)


def test_signal_errors(start_process: StartFn, wait_finished: Wait, local_client: SandboxClient) -> None:
    info = start_process("sleep", "30")
    for bad in (0, -1, 100000):
        with pytest.raises(BadRequestError) as caught:
            sandbox_process_signal.sync_detailed(
                info.pid, client=local_client, body=SendSignalRequest(signal=bad)
            )
        assert caught.value.code == "BAD_REQUEST"
    done = start_process("true")
    wait_finished(done.pid)
    with pytest.raises(BadRequestError, match="not running"):
        sandbox_process_signal.sync_detailed(done.pid, client=local_client, body=SendSignalRequest(signal=15))
    with pytest.raises(ProcessNotFoundError):
        sandbox_process_signal.sync_detailed(
            MISSING_PID, client=local_client, body=SendSignalRequest(signal=15)
        )


def test_kill_is_204_and_sigkills(
    start_process: StartFn, wait_finished: Wait, local_client: SandboxClient
) -> None:
    info = start_process("sh", "-c", "trap '' TERM; sleep 30")
    response = sandbox_process_kill.sync_detailed(info.pid, client=local_client)
    assert response.status_code == 204
    final = wait_finished(info.pid)
    assert (final.status, final.signal) == ("signaled", 9)
    assert sandbox_process_kill.sync_detailed(info.pid, client=local_client).status_code == 204
    with pytest.raises(ProcessNotFoundError):
        sandbox_process_kill.sync_detailed(MISSING_PID, client=local_client)


# -- stdin ------------------------------------------------------------------------------------


def test_stdin_bytes_reach_the_process_exactly(
    start_process: StartFn, wait_finished: Wait, local_client: SandboxClient
) -> None:
    data = bytes(range(256)) * 4096 + b"\x00\r\n tail without newline"  # ~1 MiB, every byte value
    info = start_process("sha256sum", stdin="pipe")
    assert info.stdin_writable is True
    assert write(local_client, info.pid, data[:300_000]) == 204
    assert write(local_client, info.pid, data[300_000:]) == 204
    assert sandbox_process_close_stdin.sync_detailed(info.pid, client=local_client).status_code == 204
    assert wait_finished(info.pid).exit_code == 0
    assert stdout_lines(local_client, info.pid) == [f"{hashlib.sha256(data).hexdigest()}  -"]


def test_stdin_to_a_process_without_a_pipe_is_400(
    start_process: StartFn, local_client: SandboxClient
) -> None:
    info = start_process("sleep", "30")
    with pytest.raises(StdinNotWritableError) as caught:
        write(local_client, info.pid, b"x")
    assert caught.value.status_code == 400 and caught.value.code == "STDIN_NOT_WRITABLE"


def test_stdin_unknown_pid_is_404(local_client: SandboxClient) -> None:
    with pytest.raises(ProcessNotFoundError) as caught:
        write(local_client, MISSING_PID, b"x")
    assert caught.value.code == "NOT_FOUND"


def test_write_after_close_and_after_exit_is_400(
    start_process: StartFn, wait_finished: Wait, local_client: SandboxClient
) -> None:
    info = start_process("sleep", "30", stdin="pipe")
    sandbox_process_close_stdin.sync_detailed(info.pid, client=local_client)
    got = sandbox_process_get.sync(info.pid, client=local_client)
    assert got.stdin_writable is False
    with pytest.raises(StdinNotWritableError):
        write(local_client, info.pid, b"late")
    exited = start_process("true", stdin="pipe")
    assert wait_finished(exited.pid).stdin_writable is False
    with pytest.raises(StdinNotWritableError):
        write(local_client, exited.pid, b"late")


def test_close_stdin_is_idempotent_and_errors(
    start_process: StartFn, wait_finished: Wait, local_client: SandboxClient
) -> None:
    info = start_process("cat", stdin="pipe")
    assert write(local_client, info.pid, b"one\ntwo") == 204
    assert sandbox_process_close_stdin.sync_detailed(info.pid, client=local_client).status_code == 204
    assert sandbox_process_close_stdin.sync_detailed(info.pid, client=local_client).status_code == 204
    assert wait_finished(info.pid).exit_code == 0
    assert sandbox_process_close_stdin.sync_detailed(info.pid, client=local_client).status_code == 204
    assert stdout_lines(local_client, info.pid) == ["one", "two"]
    no_pipe = start_process("sleep", "30")
    with pytest.raises(StdinNotWritableError):
        sandbox_process_close_stdin.sync_detailed(no_pipe.pid, client=local_client)
    with pytest.raises(ProcessNotFoundError):
        sandbox_process_close_stdin.sync_detailed(MISSING_PID, client=local_client)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_docs_curl_example(
    local_sandbox: LocalSandbox, start_process: StartFn, wait_finished: Wait, local_client: SandboxClient
) -> None:
    info = start_process(sys.executable, "-i", "-q", stdin="pipe")
    url, token, pid = local_sandbox.base_url, local_sandbox.token, info.pid
    result = subprocess.run(
        [
            "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
            "-X", "POST", f"{url}/api/v1/processes/{pid}/stdin",
            "-H", f"Authorization: Bearer {token}",
            "-H", "Content-Type: application/octet-stream",
            "--data-binary", "print('hello')\n",
        ],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert result.stdout == "204"
    sandbox_process_close_stdin.sync_detailed(pid, client=local_client)
    assert wait_finished(pid).exit_code == 0
    assert "hello" in stdout_lines(local_client, pid)


# -- output -----------------------------------------------------------------------------------


def test_output_snapshots(start_process: StartFn, wait_finished: Wait, local_client: SandboxClient) -> None:
    info = start_process("sh", "-c", "echo a; echo b >&2; sleep 0.1; printf 'c\\r\\nd'; echo e >&2")
    wait_finished(info.pid)
    assert stdout_lines(local_client, info.pid) == ["a", "c", "d"]
    err = sandbox_process_stderr.sync(info.pid, client=local_client)
    assert err.lines == ["b", "e"] and err.line_count == 2
    both = sandbox_process_output.sync(info.pid, client=local_client)
    assert sorted(both.lines) == ["a", "b", "c", "d", "e"] and both.line_count == 5
    assert both.lines.index("a") < both.lines.index("c") and both.lines.index("b") < both.lines.index("e")
    for op in (sandbox_process_stdout, sandbox_process_stderr, sandbox_process_output):
        with pytest.raises(ProcessNotFoundError):
            op.sync_detailed(MISSING_PID, client=local_client)


def test_exited_status_comes_with_all_output(
    start_process: StartFn, wait_finished: Wait, local_client: SandboxClient
) -> None:
    # Much output right before exit: the status must not say "exited" before it is all read.
    info = start_process("sh", "-c", "seq 1 20000")
    wait_finished(info.pid)
    lines = stdout_lines(local_client, info.pid)
    assert len(lines) == 20000 and lines[-1] == "20000"


# -- the route table ----------------------------------------------------------------------------


def test_the_route_table_serves_exactly_the_operations_of_openapi_yaml() -> None:
    # Routes are declared once (local/_routes.py): every documented operation is there, nothing
    # else is but the terminal's websocket (which OpenAPI cannot describe).
    import re
    from pathlib import Path

    import yaml
    from starlette.routing import Route, WebSocketRoute

    from tensorlake_sandbox.local._routes import ROUTES

    spec = yaml.safe_load((Path(__file__).resolve().parent.parent / "openapi.yaml").read_text())
    documented = {
        (path, method.upper())
        for path, item in spec["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    }
    served = set()
    for route in ROUTES:
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)  # {pid:pid} -> {pid}
        if isinstance(route, WebSocketRoute):
            served.add((path, "WEBSOCKET"))
        else:
            assert isinstance(route, Route) and route.methods is not None
            served |= {(path, method) for method in route.methods - {"HEAD"}}
    assert served - documented == {("/api/v1/pty/{session_id}/ws", "WEBSOCKET")}
    assert documented - served == set()
