"""The tensorlake-sandbox command, run for real as a subprocess against the local sandbox:
stdin streaming, exec with live output and exit codes, ps/kill/close-stdin, one-line errors
with documented exit codes, and (under a pseudo-terminal) the progress bar and Ctrl-C."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from tensorlake_api_client.api.sandbox_processes import sandbox_process_get, sandbox_process_output

CLI = str(Path(sys.executable).parent / "tensorlake-sandbox")


@pytest.fixture
def env(local_sandbox):
    return {**os.environ, "TENSORLAKE_API_KEY": local_sandbox.token}


def run(args, env, input=None, timeout=60):
    return subprocess.run(
        [CLI, *args], input=input, env=env, capture_output=True, timeout=timeout, check=False
    )


def output_lines(local_client, pid):
    out = sandbox_process_output.sync(pid, client=local_client)
    return out.lines


def test_seq_100000_into_wc(local_sandbox, local_client, start_process, wait_finished, env):
    proc = start_process("wc", "-l", stdin="pipe")
    result = subprocess.run(
        f"seq 100000 | {CLI} stdin {local_sandbox.base_url} {proc.pid} --close",
        shell=True,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == b""  # nothing extra when piped
    assert wait_finished(proc.pid).exit_code == 0
    assert [line.strip() for line in output_lines(local_client, proc.pid)] == ["100000"]


def test_stdin_from_file_without_close_keeps_the_pipe_open(
    local_sandbox, local_client, start_process, wait_finished, env, tmp_path
):
    data = os.urandom(3 << 20)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    proc = start_process("sh", "-c", "sha256sum | cut -c1-64", stdin="pipe")
    assert run(["stdin", local_sandbox.base_url, str(proc.pid), str(path)], env).returncode == 0
    info = sandbox_process_get.sync(proc.pid, client=local_client)
    assert info.status == "running" and info.stdin_writable
    assert run(["close-stdin", local_sandbox.base_url, str(proc.pid)], env).returncode == 0
    wait_finished(proc.pid)
    import hashlib

    assert output_lines(local_client, proc.pid) == [hashlib.sha256(data).hexdigest()]


def test_exec_prints_output_and_exits_with_remote_code(local_sandbox, env):
    result = run(["exec", local_sandbox.base_url, "--", "sh", "-c", "cat; exit 3"], env, input=b"hi\n")
    assert result.stdout == b"hi\n"
    assert result.returncode == 3, result.stderr


def test_exec_separates_stderr_env_and_cwd(local_sandbox, env, tmp_path):
    script = 'echo "out $GREETING"; echo "err $(pwd)" >&2'
    result = run(
        [
            "exec",
            local_sandbox.base_url,
            "-e",
            "GREETING=hello",
            "--cwd",
            str(tmp_path),
            "--",
            "sh",
            "-c",
            script,
        ],
        env,
        input=b"",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"out hello\n"
    assert result.stderr == f"err {tmp_path}\n".encode()


def test_exec_signalled_process_gives_128_plus_signal(local_sandbox, env):
    result = run(["exec", local_sandbox.base_url, "--", "sh", "-c", "kill -TERM $$"], env, input=b"")
    assert result.returncode == 128 + 15


def test_exec_large_stdin_round_trip(local_sandbox, env):
    data = b"".join(b"%d\n" % i for i in range(200_000))
    result = run(["exec", local_sandbox.base_url, "--", "wc", "-c"], env, input=data)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(len(data)).encode()


def test_ps_and_kill(local_sandbox, start_process, wait_finished, env, cli_main):
    proc = start_process("sleep", "30")
    listing = run(["ps", local_sandbox.base_url], env)
    assert listing.returncode == 0
    lines = listing.stdout.decode().splitlines()
    assert lines[0].split() == ["PID", "NAME", "STATUS", "EXIT", "STDIN", "COMMAND"]
    assert any(line.split()[:3] == [str(proc.pid), "-", "running"] and "sleep 30" in line for line in lines)
    assert run(["kill", local_sandbox.base_url, str(proc.pid), "--signal", "TERM"], env).returncode == 0
    assert wait_finished(proc.pid).signal == 15
    other = start_process("sleep", "30")
    assert cli_main(["kill", local_sandbox.base_url, str(other.pid)], env).returncode == 0
    assert wait_finished(other.pid).signal == 9


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["stdin", "{url}", "999999", "--close"], 3, "not found"),
        (["close-stdin", "{url}", "999999"], 3, "not found"),
        (["stdin", "evil.com/x", "1"], 2, "invalid sandbox ID or name"),
        (["stdin", "http://10.0.0.1:8500", "1"], 2, "plain http://"),
        (["ps", "http://127.0.0.1:1"], 6, "cannot reach"),
        (["kill", "{url}", "1", "--signal", "NOPE"], 2, "unknown signal"),
        (["exec", "{url}", "-e", "NOEQUALS", "--", "true"], 2, "KEY=VALUE"),
        (["stdin", "{url}", "1", "/nonexistent/file"], 2, "cannot open"),
    ],
)
def test_errors_are_one_line_with_documented_codes(local_sandbox, env, cli_main, args, code, words):
    args = [a.replace("{url}", local_sandbox.base_url) for a in args]
    result = cli_main(args, env, input=b"x")
    assert result.returncode == code, result.stderr
    err = result.stderr.decode()
    assert words in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_not_writable_names_the_fix(local_sandbox, start_process, env, cli_main):
    proc = start_process("sleep", "30")  # stdin closed (the default)
    result = cli_main(["stdin", local_sandbox.base_url, str(proc.pid)], env, input=b"data")
    assert result.returncode == 4
    assert f"process {proc.pid}: stdin is not writable" in result.stderr.decode()
    assert f"tensorlake-sandbox start {local_sandbox.base_url} --stdin -- CMD" in result.stderr.decode()


def test_wrong_key_and_missing_key(local_sandbox, env, cli_main):
    bad = cli_main(["ps", local_sandbox.base_url], {**env, "TENSORLAKE_API_KEY": "wrong"})
    assert bad.returncode == 5 and b"authentication failed" in bad.stderr
    assert b"wrong" not in bad.stderr
    no_key = {k: v for k, v in env.items() if k != "TENSORLAKE_API_KEY"}
    missing = cli_main(["ps", local_sandbox.base_url], no_key)
    assert missing.returncode == 2 and b"TENSORLAKE_API_KEY" in missing.stderr


def test_api_key_file(local_sandbox, env, tmp_path, cli_main):
    key_file = tmp_path / "key"
    key_file.write_text(local_sandbox.token + "\n")
    no_env = {k: v for k, v in env.items() if k != "TENSORLAKE_API_KEY"}
    assert cli_main(["ps", local_sandbox.base_url, "--api-key-file", str(key_file)], no_env).returncode == 0


@pytest.mark.parametrize("command", ["stdin", "close-stdin", "ps", "kill", "exec"])
def test_every_subcommand_has_help_with_an_example(command, cli_main):
    result = cli_main([command, "--help"], {})
    assert result.returncode == 0
    stdout = result.stdout.decode()
    assert "example:" in stdout and "tensorlake-sandbox" in stdout
    assert "exit codes:" in stdout


def test_python_dash_m_entry_point():
    result = subprocess.run(
        [sys.executable, "-m", "tensorlake_sandbox", "--help"], capture_output=True, timeout=30
    )
    assert result.returncode == 0 and b"tensorlake-sandbox" in result.stdout


# -- under a pseudo-terminal ------------------------------------------------------------------


class Terminal:
    """The CLI with a pseudo-terminal as its controlling terminal, stdin and stderr."""

    def __init__(self, args, env):
        self.master, slave = pty.openpty()
        # A real terminal has a size; at 0x0 tqdm draws nothing.
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))

        def controlling_tty():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(
            [CLI, *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            preexec_fn=controlling_tty,
        )
        os.close(slave)
        self.seen = b""

    def read_until(self, needle: bytes, timeout: float = 20) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not seen on the terminal; saw {self.seen!r}")
            ready, _, _ = select.select([self.master], [], [], min(left, 0.2))
            if ready:
                try:
                    self.seen += os.read(self.master, 4096)
                except OSError:  # the other side closed
                    time.sleep(0.05)
        return self.seen

    def wait(self, timeout: float = 20) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            try:
                while select.select([self.master], [], [], 0)[0]:
                    self.seen += os.read(self.master, 4096)
            except OSError:
                pass

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)


def test_progress_bar_on_a_terminal(local_sandbox, start_process, wait_finished, env, tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(4 << 20))
    proc = start_process("sh", "-c", "cat > /dev/null", stdin="pipe")
    term = Terminal(["stdin", local_sandbox.base_url, str(proc.pid), str(path), "--close"], env)
    try:
        assert term.wait() == 0
        shown = term.read_until(b"100%")
        assert b"4.00M" in shown
    finally:
        term.close()
    assert wait_finished(proc.pid).exit_code == 0


def test_ctrl_c_interrupts_then_kills_the_remote_process(local_sandbox, env):
    script = "trap 'echo got INT' INT; echo ready; while :; do sleep 0.1; done"
    term = Terminal(["exec", local_sandbox.base_url, "--", "sh", "-c", script], env)
    try:
        term.read_until(b"ready")  # the remote process runs and its output is live
        os.write(term.master, b"\x03")  # Ctrl-C: SIGINT to the CLI, which sends SIGINT on
        term.read_until(b"sent SIGINT")
        term.read_until(b"got INT")  # the remote trap ran: the signal reached the process
        os.write(term.master, b"\x03")  # again: kill
        term.read_until(b"killing it")
        assert term.wait() == 128 + 9
    finally:
        term.close()


def test_endless_producer_into_unknown_pid_fails_fast_and_cleanly(local_sandbox, env):
    """The reader thread is still blocked on stdin when the command exits: no abort, no hang."""
    result = subprocess.run(
        f"yes | {CLI} stdin {local_sandbox.base_url} 999999",
        shell=True,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 3, result.stderr
    assert b"not found" in result.stderr and b"Fatal" not in result.stderr


def test_local_subcommand_delegates_to_the_local_sandbox():
    result = subprocess.run([CLI, "local", "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert result.stdout.startswith("usage: tensorlake-sandbox local")
    assert "--token" in result.stdout and "--port" in result.stdout


def test_start_with_a_name_then_ps_logs_restart_and_kill_by_name(local_sandbox, env):
    url = local_sandbox.base_url
    started = run(
        ["start", url, "--name", "cli-web", "--restart", "always", "--", "sh", "-c", "echo up; sleep 60"], env
    )
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout)
    lines = run(["ps", url], env).stdout.decode().splitlines()
    assert any(line.split()[:3] == [str(pid), "cli-web", "running"] for line in lines), lines
    restarted = run(["restart", url, "cli-web"], env)
    assert restarted.returncode == 0, restarted.stderr
    new_pid = int(restarted.stdout)
    assert new_pid != pid
    follow = run(["logs", url, "cli-web"], env)
    assert follow.returncode == 0 and follow.stdout.decode().splitlines() in ([], ["up"])
    assert run(["kill", url, "cli-web"], env).returncode == 0
    with local_sandbox.client() as client:
        info = client.get_httpx_client().get("/api/v1/processes/cli-web").json()
    assert info["managed"]["status"] == "stopped" and info["pid"] == new_pid
    refused = run(["restart", url, "12a/"], env)
    assert refused.returncode == 2 and b"invalid process name" in refused.stderr
