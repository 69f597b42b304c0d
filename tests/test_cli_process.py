"""The process commands of the CLI (start, logs, run), exec's cleanup when its output pipe closes,
and the one-line, shell-worded errors: all run for real as subprocesses against the local sandbox."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from tensorlake_api_client.api.sandbox_processes import sandbox_process_list
from tensorlake_sandbox import SandboxClient

from .test_cli import CLI, run
from .test_process import wait_gone


@pytest.fixture
def env(local_sandbox):
    return {**os.environ, "TENSORLAKE_API_KEY": local_sandbox.token}


def running(client: SandboxClient, marker: str) -> list[int]:
    procs = sandbox_process_list.sync(client=client).processes
    return [p.pid for p in procs if p.status == "running" and marker in " ".join([p.command, *p.args])]


def test_start_stdin_and_logs_follow(local_sandbox, env, wait_finished, cli_main):
    url = local_sandbox.base_url
    started = run(["start", url, "--stdin", "--", "sh", "-c", "cat; echo bye >&2"], env)
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout)
    fed = cli_main(["stdin", url, str(pid), "--close"], env, input=b"one\ntwo\n")  # real in test_cli
    assert fed.returncode == 0, fed.stderr
    follow = run(["logs", url, str(pid), "-f"], env)
    assert (follow.returncode, follow.stdout) == (0, b"one\ntwo\n")
    assert wait_finished(pid).exit_code == 0
    # The same command's options, in-process (no interpreter start-up each).
    assert cli_main(["logs", url, str(pid)], env).stdout == b"one\ntwo\n"
    assert cli_main(["logs", url, str(pid), "--stderr"], env).stdout == b"bye\n"
    assert cli_main(["logs", url, str(pid), "--output", "-f"], env).stdout == b"one\ntwo\nbye\n"


def test_start_without_stdin_has_no_pipe(local_sandbox, env, local_client, wait_finished, cli_main):
    started = cli_main(["start", local_sandbox.base_url, "-e", "X=42", "--", "sh", "-c", 'echo "$X"'], env)
    pid = int(started.stdout)
    assert wait_finished(pid).exit_code == 0
    assert cli_main(["logs", local_sandbox.base_url, str(pid)], env).stdout == b"42\n"


def test_run_streams_output_and_exits_with_the_remote_code(local_sandbox, env, cli_main):
    result = run(["run", local_sandbox.base_url, "--", "sh", "-c", "echo out; echo err >&2; exit 3"], env)
    assert (result.returncode, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
    killed = cli_main(["run", local_sandbox.base_url, "--", "sh", "-c", "kill -TERM $$"], env)
    assert killed.returncode == 128 + signal.SIGTERM


def test_run_output_is_live_and_ctrl_c_kills(local_sandbox, env, local_client):
    with subprocess.Popen(
        [CLI, "run", local_sandbox.base_url, "--", "sh", "-c", "echo first; sleep 30"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == b"first\n"  # printed while the command still runs
        finally:
            proc.send_signal(signal.SIGINT)  # Ctrl-C: the remote command is killed
            assert proc.wait(30) == 130
    assert running(local_client, "echo first; sleep 30") == []


@pytest.mark.parametrize("command", ["run", "exec"])
@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGTERM])
def test_a_closed_terminal_or_sigterm_kills_the_remote_process_too(
    local_sandbox, env, local_client, command, signum
):
    """SIGHUP (the terminal closed) or SIGTERM stops run and exec as Ctrl-C does: the remote
    command is killed, not left running unseen, and the exit status is the signal's."""
    script = f"echo first; sleep 30 # {command} {int(signum)}"
    with subprocess.Popen(
        [CLI, command, local_sandbox.base_url, "--", "sh", "-c", script],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == b"first\n"
        finally:
            proc.send_signal(signum)
            assert proc.wait(30) == 128 + signum
    assert running(local_client, script) == []


def test_run_timeout_kills_and_exits_124(local_sandbox, env, local_client):
    started = time.monotonic()
    result = run(
        ["run", local_sandbox.base_url, "--timeout", "1", "--", "sh", "-c", "sleep 30 & echo $!; wait"], env
    )
    assert result.returncode == 124, result.stderr
    assert time.monotonic() - started < 15
    assert b"timed out after 1 s" in result.stderr
    assert wait_gone(int(result.stdout.split()[0]))


def test_exec_into_head_kills_the_remote_process(local_sandbox, env, local_client):
    marker = "yes exec-into-head"
    result = subprocess.run(
        f"{CLI} exec {local_sandbox.base_url} -- {marker} </dev/null | head -1",
        shell=True,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert result.stdout == b"exec-into-head\n"
    assert b"Traceback" not in result.stderr
    deadline = time.monotonic() + 10
    while running(local_client, marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running(local_client, marker) == [], "exec left `yes` running after head exited"


def test_exec_broken_pipe_exit_status(local_sandbox, env):
    # Like a local `yes | head -1`: the writer ends as if killed by SIGPIPE.
    result = subprocess.run(
        f"{CLI} exec {local_sandbox.base_url} -- sh -c 'while :; do echo y; sleep 0.01; done' </dev/null"
        " | head -1; echo ${PIPESTATUS[0]} >&2",
        shell=True,
        executable="/bin/bash",
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert result.stderr.strip().splitlines()[-1] == b"141"


# -- errors ------------------------------------------------------------------------------------


class Result:
    def __init__(self, returncode: int, stderr: str):
        self.returncode = returncode
        self.stderr = stderr


def in_process(args: list[str], monkeypatch, capsys, key: str = "k") -> Result:
    """The CLI's main() in this process (the same code as the command, without an interpreter start)."""
    from tensorlake_sandbox.cli import main

    monkeypatch.setenv("TENSORLAKE_API_KEY", key)
    try:
        code = main(args)
    except SystemExit as exc:  # argparse's usage errors
        code = int(exc.code or 0)
    return Result(code, capsys.readouterr().err)


def check_one_line(result: Result, code: int) -> str:
    err = result.stderr
    assert result.returncode == code, err
    assert err.count("\n") == 1 and err.startswith("tensorlake-sandbox"), err
    assert "Traceback" not in err
    # No Python words: keyword arguments such as base_url= or api_key=.
    assert not re.search(r"\b(base_url|api_key|proxy_host|httpx_args)\b", err), err
    return err


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["ps", "127.0.0.1:8500"], "http://127.0.0.1:8500"),
        (["ps", "localhost:8500"], "http://localhost:8500"),
        (["ps", "http://[::1]evil.com"], "invalid sandbox URL"),
        (["ps", "ftp://127.0.0.1"], "https://"),
        (["ps", "my_sandbox"], "invalid sandbox ID or name"),
        (["ps", "{url}", "--timeout", "nan"], "positive, finite number of seconds"),
        (["ps", "{url}", "--timeout", "inf"], "positive, finite number of seconds"),
        (["ps", "{url}", "--timeout", "-1"], "positive, finite number of seconds"),
        (["kill", "{url}", "-5"], "not a positive number"),
        (["logs", "{url}", "0"], "not a positive number"),
        (["run", "{url}", "--timeout", "nan", "--", "true"], "positive, finite number of seconds"),
        (["start", "{url}", "-e", "NOEQUALS", "--", "true"], "expected KEY=VALUE"),
    ],
)
def test_usage_errors_are_one_line_in_shell_words(local_sandbox, monkeypatch, capsys, args, words):
    args = [a.replace("{url}", local_sandbox.base_url) for a in args]
    err = check_one_line(in_process(args, monkeypatch, capsys), 2)
    assert words in err


def test_usage_errors_from_the_installed_command_too(local_sandbox, env):
    result = run(["ps", "http://[::1]evil.com"], env)
    assert result.returncode == 2 and result.stderr.count(b"\n") == 1 and b"Traceback" not in result.stderr


def test_non_utf8_key_file(local_sandbox, monkeypatch, capsys, tmp_path):
    key = tmp_path / "key"
    key.write_bytes(b"\xff\xfe\x00")
    args = ["ps", local_sandbox.base_url, "--api-key-file", str(key)]
    err = check_one_line(in_process(args, monkeypatch, capsys), 2)
    assert "not text" in err


def test_a_bad_key_names_where_it_came_from(local_sandbox, monkeypatch, capsys):
    err = check_one_line(in_process(["ps", "my-sandbox"], monkeypatch, capsys, key="two words"), 2)
    assert "TENSORLAKE_API_KEY" in err and "sandbox name" not in err
    assert "two words" not in err  # never print the key


def test_unreachable_local_sandbox_hints_at_the_local_command(monkeypatch, capsys, closed_port):
    port = closed_port
    err = check_one_line(in_process(["ps", f"http://127.0.0.1:{port}"], monkeypatch, capsys), 6)
    assert "cannot reach the sandbox" in err and "tensorlake-sandbox local" in err and str(port) in err


def test_run_of_a_missing_command_is_one_line(local_sandbox, monkeypatch, capsys):
    args = ["run", local_sandbox.base_url, "--", "no-such-command-xyz"]
    err = check_one_line(in_process(args, monkeypatch, capsys, key=local_sandbox.token), 127)
    assert "no-such-command-xyz" in err


def test_version_from_package_metadata():
    from importlib.metadata import version

    import tensorlake_sandbox

    result = subprocess.run([CLI, "--version"], capture_output=True, text=True, timeout=30, check=True)
    assert result.stdout == f"tensorlake-sandbox {version('tensorlake-sandbox-client')}\n"
    assert tensorlake_sandbox.__version__ == version("tensorlake-sandbox-client")
