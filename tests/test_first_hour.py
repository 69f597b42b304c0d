"""What a new user meets in the first hour (issue 25): the command with its stdin or stdout
closed or full, timeouts the sandbox cannot take, shell exit codes (126, 127), and argument
errors that say the fix. In-process where the CLI's main() can be driven with fake stdio; a
real subprocess where only real descriptors show the bug (``<&-``, ``>&-``, ``>/dev/full``)."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import subprocess
import sys
import time

import pytest

from tensorlake_sandbox import (
    SandboxClient,
    SandboxConnectionError,
    TerminalClosedError,
    run,
    sandbox_client,
    start,
)
from tensorlake_sandbox._async._terminal import aopen_terminal
from tensorlake_sandbox._sync._terminal import open_terminal

from .test_cli import CLI
from .test_cli_process import check_one_line, in_process, running
from .test_local_server import Server, start_server, stop


@pytest.fixture
def env(local_sandbox):
    return {**os.environ, "TENSORLAKE_API_KEY": local_sandbox.token}


_REFUSING: list[int] = []


@pytest.fixture(autouse=True, scope="module")
def _refusing_port():
    """A loopback port bound (never listened on) for the module: connections to it are refused,
    and no other test worker's server can take it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        _REFUSING.append(sock.getsockname()[1])
        yield
        _REFUSING.clear()


def nowhere() -> str:
    """A sandbox URL nothing listens on: a command that sends anything there exits 6, not 2."""
    return f"http://127.0.0.1:{_REFUSING[0]}"


def shell(script: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    """``script`` in sh, with $T the command: for redirections only a shell can make (``<&-``)."""
    return subprocess.run(
        ["sh", "-c", script], env={**env, "T": CLI}, capture_output=True, timeout=timeout, check=False
    )


def ends(client: SandboxClient, marker: str, timeout: float = 10.0) -> bool:
    """Whether the process whose command line holds ``marker`` ends (killed) within ``timeout``."""
    deadline = time.monotonic() + timeout
    while running(client, marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def one_line(result: subprocess.CompletedProcess[bytes], code: int) -> str:
    err = result.stderr.decode()
    assert result.returncode == code, err
    assert err.count("\n") == 1 and err.startswith("tensorlake-sandbox"), err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    return err


# -- timeouts the sandbox cannot take: refused before anything is sent ---------------------------


@pytest.mark.parametrize(
    "command", [["run", "{url}", "--timeout", "1e10", "--", "true"], ["ps", "{url}", "--timeout", "3e9"]]
)
def test_cli_refuses_a_timeout_the_sandbox_cannot_take_before_sending(monkeypatch, capsys, command):
    args = [a.replace("{url}", nowhere()) for a in command]
    err = check_one_line(in_process(args, monkeypatch, capsys), 2)
    assert "2147483647" in err and "OverflowError" not in err


def test_library_run_refuses_a_timeout_the_sandbox_cannot_take_before_sending():
    client = sandbox_client(base_url=nowhere(), api_key="k")
    with pytest.raises(ValueError, match="at most 2147483647 seconds"):
        run(client, ["true"], timeout=1e10)
    with pytest.raises(ValueError, match="at most 2147483647 seconds"):
        run(client, ["true"], timeout=3e9)


def test_a_client_timeout_python_cannot_wait_is_refused_when_the_client_is_made():
    with pytest.raises(ValueError, match="at most 2147483647 seconds"):
        sandbox_client(base_url=nowhere(), api_key="k", timeout=1e10)


def test_library_communicate_refuses_a_timeout_the_sandbox_cannot_take(local_client: SandboxClient):
    with start(local_client, ["cat"], stdin=True) as p:
        with pytest.raises(ValueError, match="at most 2147483647 seconds"):
            p.communicate(b"x", timeout=1e10)
        assert p.poll() is None  # refused before the input went anywhere
        assert p.communicate(b"hi")[0] == "hi\n"  # no "x": nothing was sent


def test_the_longest_timeout_the_sandbox_takes_is_accepted(local_client: SandboxClient):
    assert run(local_client, ["true"], timeout=2**31 - 1).returncode == 0


def test_env_value_error_names_the_variable_and_the_type():
    client = sandbox_client(base_url=nowhere(), api_key="k")
    with pytest.raises(TypeError) as info:
        run(client, ["true"], env={"A": 1})  # type: ignore[dict-item]
    assert str(info.value) == "env value for 'A' must be a str, got int (1)"


# -- shell conventions ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["run", "exec", "start"])
def test_a_command_that_is_not_there_exits_127(local_sandbox, monkeypatch, capsys, command):
    args = [command, local_sandbox.base_url, "--", "no-such-command-xyz"]
    err = check_one_line(in_process(args, monkeypatch, capsys, key=local_sandbox.token), 127)
    assert "no-such-command-xyz: command not found in the sandbox" in err and "HTTP" not in err


@pytest.mark.parametrize("command", ["run", "exec", "start"])
def test_a_command_that_cannot_run_exits_126(local_sandbox, monkeypatch, capsys, command, tmp_path):
    args = [command, local_sandbox.base_url, "--", str(tmp_path)]  # a directory
    err = check_one_line(in_process(args, monkeypatch, capsys, key=local_sandbox.token), 126)
    assert f"{tmp_path}: cannot run it in the sandbox" in err and "HTTP" not in err


def test_command_options_without_dashdash_say_to_put_the_command_after_it(monkeypatch, capsys):
    url = nowhere()
    err = check_one_line(in_process(["run", url, "ls", "-la", "/"], monkeypatch, capsys), 2)
    assert f"put the remote command after --: tensorlake-sandbox run {url} -- ls -la /" in err


def test_an_unknown_option_of_a_command_without_a_remote_command_has_no_dashdash_hint(monkeypatch, capsys):
    err = check_one_line(in_process(["ps", nowhere(), "--bogus"], monkeypatch, capsys), 2)
    assert "--bogus" in err and "after --" not in err


# -- closed and full stdio ----------------------------------------------------------------------


@pytest.mark.parametrize("command", [["run", "--", "true"], ["exec", "--", "true"], ["shell"], ["ps"]])
def test_a_closed_stdout_is_refused_before_sending(monkeypatch, capsys, command):
    args = [command[0], nowhere(), *command[1:]]
    monkeypatch.setattr(sys, "stdout", None)  # what Python makes of >&-
    err = check_one_line(in_process(args, monkeypatch, capsys), 2)
    assert "stdout is closed" in err


def test_stdin_command_with_stdin_closed_is_one_line_before_sending(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", None)  # what Python makes of <&-
    err = check_one_line(in_process(["stdin", nowhere(), "42"], monkeypatch, capsys), 2)
    assert "stdin is closed" in err


def test_run_into_a_full_stdout_stops_kills_and_says_so(local_sandbox, local_client, monkeypatch, capsys):
    marker = "full-stdout-marker-1"
    full = io.TextIOWrapper(open("/dev/full", "wb", buffering=0), write_through=True)  # noqa: SIM115
    monkeypatch.setattr(sys, "stdout", full)
    args = ["run", local_sandbox.base_url, "--", "sh", "-c", f"echo {marker}; exec sleep 60"]
    err = check_one_line(in_process(args, monkeypatch, capsys, key=local_sandbox.token), 1)
    full.detach().close()
    assert "cannot write the output to stdout: No space left on device" in err
    assert ends(local_client, marker)


def test_exec_with_stdin_closed_sends_eof_and_does_not_hang(local_sandbox, env):
    result = shell(f"$T exec {local_sandbox.base_url} -- sh -c 'cat; echo done' <&-", env, timeout=30)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"done\n", b"")


def test_shell_with_stdin_closed_sends_eof(local_sandbox, env):
    result = shell(f"$T shell {local_sandbox.base_url} -- sh -c 'cat; echo done' <&-", env, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(b"done\r\n")


def test_shell_forwards_the_end_of_piped_input(local_sandbox, env):
    # Local stdin is a pipe that ends: the end reaches the program as Ctrl-D, so cat ends.
    result = shell(f"printf 'hi\\n' | $T shell {local_sandbox.base_url} -- sh -c 'cat; echo done'", env, 15)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(b"done\r\n")


def test_stdin_command_with_stdin_closed_for_real(env):
    one_line(shell(f"$T stdin {nowhere()} 42 <&-", env), 2)


@pytest.mark.parametrize("command", ["run", "exec", "shell"])
def test_closed_stdout_for_real(env, command):
    err = one_line(shell(f"$T {command} {nowhere()} -- true >&-", env), 2)
    assert "stdout is closed" in err


@pytest.mark.parametrize("command", ["run", "exec"])
def test_full_stdout_for_real_kills_the_remote_process(local_sandbox, local_client, env, command):
    marker = f"full-for-real-{command}"
    script = (
        f"$T {command} {local_sandbox.base_url} -- sh -c 'echo {marker}; exec sleep 60' >/dev/full </dev/null"
    )
    err = one_line(shell(script, env), 1)
    assert "No space left on device" in err
    assert ends(local_client, marker)


@pytest.mark.parametrize(
    ("command", "code"),
    [("run {url} -- true", 6), ("stdin {live} 999999 /etc/passwd", 3), ("ps", 2), ("run {url} ls -la", 2)],
)
def test_closed_stderr_never_puts_errors_on_stdout(local_sandbox, env, command, code):
    result = shell(f"$T {command.format(url=nowhere(), live=local_sandbox.base_url)} 2>&-", env)
    assert (result.returncode, result.stdout) == (code, b"")


# -- messages name what the user gave -------------------------------------------------------------


def test_a_cli_timeout_says_no_answer_in_time_not_cannot_reach(cli_main):
    # A server that takes the connection (the kernel's backlog) and never answers.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        done = cli_main(["ps", url, "--timeout", "0.3"], {"TENSORLAKE_API_KEY": "k"})
    err = done.stderr.decode()
    assert done.returncode == 6, err
    assert "no answer within the timeout" in err and "cannot reach" not in err, err


def test_a_refused_connection_names_the_url():
    url = nowhere()
    client = sandbox_client(base_url=url, api_key="k")
    with pytest.raises(SandboxConnectionError) as info:
        run(client, ["true"])
    assert url in str(info.value)


def test_a_refused_connection_never_names_a_path_or_query():
    url = nowhere()
    client = sandbox_client(base_url=url, api_key="k")
    with pytest.raises(SandboxConnectionError) as info:
        client.get_httpx_client().get("/api/v1/pty/x/ws?token=secret-token")
    assert url in str(info.value) and "secret-token" not in str(info.value) and "/api" not in str(info.value)


# -- terminals: hints of their own, and a sandbox that goes away ----------------------------------


@pytest.fixture
def pty_session(local_sandbox, local_client: SandboxClient):
    http = local_client.get_httpx_client()
    answer = http.post("/api/v1/pty", json={"command": "sleep", "args": ["30"], "rows": 24, "cols": 80})
    assert answer.status_code == 201, answer.text
    session = answer.json()
    yield session
    http.delete(f"/api/v1/pty/{session['session_id']}")


def test_a_wrong_pty_token_says_so_not_the_api_key(local_sandbox, pty_session, monkeypatch, capsys):
    monkeypatch.setenv("TENSORLAKE_PTY_TOKEN", "wrong-token")
    args = ["shell", local_sandbox.base_url, f"--attach={pty_session['session_id']}"]
    err = check_one_line(in_process(args, monkeypatch, capsys, key=local_sandbox.token), 5)
    assert "refused its token" in err and "TENSORLAKE_PTY_TOKEN" in err
    assert "TENSORLAKE_API_KEY" not in err


def test_an_unknown_pty_session_does_not_suggest_ps(local_sandbox, monkeypatch, capsys):
    monkeypatch.setenv("TENSORLAKE_PTY_TOKEN", "some-token")
    args = ["shell", local_sandbox.base_url, "--attach", "no-such-session"]
    err = check_one_line(in_process(args, monkeypatch, capsys, key=local_sandbox.token), 3)
    assert "session no-such-session: not found" in err and "ps" not in err.split()


def stop_once(server: Server) -> None:
    if server.proc.stdout is not None and not server.proc.stdout.closed:
        stop(server)


def test_shell_says_session_terminated_when_the_sandbox_stops():
    server = start_server()
    try:
        env = {**os.environ, "TENSORLAKE_API_KEY": server.token}
        shell_ = subprocess.Popen(
            [CLI, "shell", server.base_url, "--", "sh", "-c", "echo ready; exec sleep 30"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert shell_.stdout is not None
        assert shell_.stdout.readline() == b"ready\r\n"
    finally:
        stop_once(server)
    _, err = shell_.communicate(timeout=30)
    assert shell_.returncode == 6, err
    assert err.decode().count("\n") == 1 and "session terminated" in err.decode(), err
    assert b"cannot reach" not in err and b"Traceback" not in err


def test_leaving_a_terminal_block_after_the_sandbox_stopped_does_not_raise():
    server = start_server()
    client = sandbox_client(base_url=server.base_url, api_key=server.token)
    try:
        with open_terminal(client, "sh", ["-c", "echo ready; exec sleep 30"]) as term:
            assert b"ready" in term.read(10)
            stop_once(server)
            with pytest.raises(TerminalClosedError):
                term.wait(10)
    finally:
        stop_once(server)
        client.get_httpx_client().close()


def test_leaving_an_async_terminal_block_after_the_sandbox_stopped_does_not_raise():
    server = start_server()

    async def main() -> None:
        client = sandbox_client(base_url=server.base_url, api_key=server.token)
        try:
            async with await aopen_terminal(client, "sh", ["-c", "echo ready; exec sleep 30"]) as term:
                assert b"ready" in await term.read(10)
                stop_once(server)
                with pytest.raises(TerminalClosedError):
                    await term.wait(10)
        finally:
            await client.aclose()

    try:
        asyncio.run(main())
    finally:
        stop_once(server)


def test_the_reattach_hint_parses_back_for_an_id_that_begins_with_a_dash(tmp_path):
    from tensorlake_sandbox.cli._parser import build_parser
    from tensorlake_sandbox.cli._shell import _reattach_hint

    hint = _reattach_hint("http://127.0.0.1:8500", "-Ab3_x", tmp_path / "t")
    command = next(line.split()[1:] for line in hint.splitlines() if "tensorlake-sandbox shell" in line)
    assert build_parser().parse_args(command).attach == "-Ab3_x"


@pytest.mark.parametrize("command", ["shell", "exec -t"])
def test_a_terminal_into_a_full_stdout_stops_kills_and_says_so(local_sandbox, local_client, env, command):
    marker = f"full-tty-{command.replace(' ', '')}"
    script = f"$T {command} {local_sandbox.base_url} -- sh -c 'seq 100000; echo {marker}; exec sleep 60'"
    err = one_line(shell(f"{script} >/dev/full </dev/null", env), 1)
    assert "cannot write the output to stdout: No space left on device" in err
    sessions = local_client.get_httpx_client().get("/api/v1/pty").json()["sessions"]
    assert not [s for s in sessions if marker in " ".join(s["args"]) and s["is_alive"]]


@pytest.mark.parametrize("command", [["shell"], ["exec", "-t", "--", "top"]])
def test_terminal_commands_off_posix_are_one_line(monkeypatch, capsys, command):
    from tensorlake_sandbox.cli import _shell

    monkeypatch.setattr(_shell, "POSIX", False)
    args = [command[0], nowhere(), *command[1:]]
    err = check_one_line(in_process(args, monkeypatch, capsys), 2)
    assert "need a POSIX system" in err
