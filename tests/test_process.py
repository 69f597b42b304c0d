"""The subprocess-shaped layer (`run`, `start`, `RemoteProcess`) against the local sandbox: real
processes on this machine, real HTTP on 127.0.0.1. Also: following output through a proxy that
cuts the Server-Sent Event stream mid-way, and argument checks that send nothing."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from tensorlake_api_client.api.sandbox_processes import sandbox_process_get
from tensorlake_sandbox import (
    OutputLine,
    RemoteProcess,
    SandboxClient,
    SandboxConnectionError,
    run,
    sandbox_client,
    start,
)
from tensorlake_sandbox._sync._process import LineStream
from tensorlake_sandbox.local import LocalSandbox

from .servers.dropping_proxy import DroppingProxy


def gone(pid: int) -> bool:
    """True once no process with this pid exists on this machine (the local sandbox runs them here)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0): check its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(pid):
            return True
        time.sleep(0.02)
    return False


def status(client: SandboxClient, pid: int) -> str:
    return sandbox_process_get.sync(pid, client=client).status


# -- run ---------------------------------------------------------------------------------------


def test_run_with_input_returns_code_stdout_and_stderr(local_client):
    r = run(local_client, ["sh", "-c", "cat; echo err >&2; exit 3"], input="hi\n")
    assert isinstance(r, subprocess.CompletedProcess)
    assert (r.returncode, r.stdout, r.stderr) == (3, "hi\n", "err\n")
    assert r.args == ["sh", "-c", "cat; echo err >&2; exit 3"]


def test_run_without_input(local_client):
    r = run(local_client, ["sh", "-c", "echo a; echo b >&2; echo c; exit 4"])
    assert (r.returncode, r.stdout, r.stderr) == (4, "a\nc\n", "b\n")


def test_run_env_cwd_and_bytes(local_client, tmp_path):
    r = run(local_client, ["sh", "-c", 'echo "$GREETING"; pwd'], env={"GREETING": "héllo"}, cwd=str(tmp_path))
    assert r.stdout == f"héllo\n{tmp_path}\n"
    b = run(local_client, ["echo", "héllo"], text=False)
    assert b.stdout == "héllo\n".encode() and b.stderr == b""


def test_line_endings_are_rebuilt_as_documented(local_client):
    # Captured by line: "\r\n" comes back as "\n", and a missing final newline is added.
    r = run(local_client, ["printf", "a\\r\\nb"])
    assert r.stdout == "a\nb\n"


def test_killed_by_signal_gives_negative_returncode(local_client):
    r = run(local_client, ["sh", "-c", "kill -TERM $$"])
    assert r.returncode == -signal.SIGTERM


def test_check_raises_called_process_error(local_client):
    with pytest.raises(subprocess.CalledProcessError) as info:
        run(local_client, ["sh", "-c", "echo out; exit 7"], check=True)
    assert info.value.returncode == 7 and info.value.output == "out\n"
    assert run(local_client, ["true"], check=True).returncode == 0


@pytest.mark.parametrize("with_input", [False, True], ids=["run-endpoint", "start-and-stdin"])
def test_timeout_kills_the_whole_remote_tree_then_raises(local_client, with_input):
    # The shell prints the pid of a background sleep: that grandchild must die too.
    script = "sleep 30 & echo $!; cat >/dev/null; wait"
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as info:
        run(local_client, ["sh", "-c", script], timeout=1, input="x" if with_input else None)
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 8, elapsed
    assert info.value.timeout == 1
    child = int(info.value.output.split()[0])
    assert wait_gone(child), f"the background sleep {child} survived the timeout"


def test_run_sleep_30_timeout_1(local_client):
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        run(local_client, ["sleep", "30"], timeout=1)
    assert time.monotonic() - started < 8


def test_input_a_process_does_not_read_is_dropped_like_a_broken_pipe(local_client):
    r = run(local_client, ["true"], input="x" * 100_000)
    assert r.returncode == 0


# -- start / RemoteProcess --------------------------------------------------------------------


def test_a_line_written_to_cat_shows_up_while_stdin_is_open(local_client):
    with start(local_client, ["cat"]) as p:
        assert isinstance(p, RemoteProcess) and p.pid > 0
        assert p.stdin is not None
        p.stdin.write("hello\n")
        assert next(p.stdout) == "hello\n"
        assert p.poll() is None  # still running: stdin is open
        p.stdin.write(b"world\n")
        assert next(p.stdout) == "world\n"
        p.stdin.close()
        assert p.wait(timeout=10) == 0
        assert list(p.stdout) == []  # eof after the two lines
    assert p.returncode == 0


def test_output_tags_each_line_with_its_stream(local_client):
    with start(local_client, ["sh", "-c", "echo one; sleep 0.1; echo two >&2"], stdin=False) as p:
        assert p.stdin is None
        assert list(p.output) == [OutputLine("stdout", "one\n"), OutputLine("stderr", "two\n")]
        assert list(p.stderr) == ["two\n"]
        assert p.wait(10) == 0


def test_communicate_returns_what_the_iterators_did_not_take(local_client):
    with start(local_client, ["sh", "-c", "cat; echo e1 >&2; echo e2 >&2"]) as p:
        assert p.stdin is not None
        p.stdin.write("l1\n")
        assert next(p.stdout) == "l1\n"
        out, err = p.communicate("l2\nl3\n", timeout=20)
        assert (out, err) == ("l2\nl3\n", "e1\ne2\n")
        assert p.returncode == 0


def test_communicate_timeout_keeps_the_process_and_resumes(local_client):
    with start(local_client, ["sh", "-c", "echo one; sleep 1.5; echo two"], stdin=False) as p:
        with pytest.raises(subprocess.TimeoutExpired) as info:
            p.communicate(timeout=0.3)
        assert p.poll() is None
        assert info.value.output in ("", "one\n")
        assert p.communicate(timeout=20) == ("one\ntwo\n", "")
        assert p.returncode == 0


def test_a_second_communicate_with_input_is_refused_not_ignored(local_client):
    with start(local_client, ["cat"]) as p:
        assert p.communicate("a\n", timeout=20) == ("a\n", "")
        with pytest.raises(ValueError, match="not sent twice"):
            p.communicate("b\n", timeout=20)


def test_a_run_silent_for_longer_than_the_read_timeout_completes(local_sandbox):
    # The read timeout bounds one answer, not a process's silence: output streams have none.
    # (The local sandbox's keep-alive comes every second: the silence here is shorter.)
    client = sandbox_client(
        base_url=local_sandbox.base_url, api_key=local_sandbox.token, timeout=httpx.Timeout(20, read=0.2)
    )
    with client:
        r = run(client, ["sh", "-c", "sleep 0.7; echo done"], timeout=20)
        assert (r.returncode, r.stdout) == (0, "done\n")
        r = run(client, ["sh", "-c", "sleep 0.7; cat"], input="in\n", timeout=20)
        assert (r.returncode, r.stdout) == (0, "in\n")


def test_wait_timeout_and_terminate(local_client):
    with start(local_client, ["sleep", "30"], stdin=False) as p:
        with pytest.raises(subprocess.TimeoutExpired):
            p.wait(timeout=0.2)
        p.terminate()
        assert p.wait(timeout=10) == -signal.SIGTERM
        p.kill()  # after the end: nothing happens, like Popen
        p.send_signal(signal.SIGTERM)


def test_context_manager_kills_a_process_that_does_not_end(local_client):
    with start(local_client, ["sleep", "30"], stdin=False) as p:
        p.exit_timeout = 0.3
    assert p.returncode == -signal.SIGKILL
    assert status(local_client, p.pid) == "signaled"


def test_context_manager_kills_at_once_on_an_exception(local_client):
    started = time.monotonic()
    with pytest.raises(RuntimeError), start(local_client, ["sleep", "30"]) as p:
        raise RuntimeError("boom")
    assert time.monotonic() - started < 5
    assert wait_gone(p.pid)


def test_context_manager_lets_a_finishing_process_finish(local_client):
    with start(local_client, ["sh", "-c", "cat; exit 5"]) as p:
        assert p.stdin is not None
        p.stdin.write("x\n")
    assert p.returncode == 5  # stdin closed at exit, and it ended by itself


def test_run_kills_on_keyboard_interrupt(local_client, monkeypatch):
    from tensorlake_sandbox._backend import Worker

    real = Worker.join_until
    calls = []

    def interrupted(self, deadline):
        calls.append(1)
        if len(calls) == 1:
            # Ctrl-C once the run has started its process (the stream said so: the run knows its
            # pid), and it is running: otherwise there would be nothing to kill.
            self._fn.started.wait(20)
            assert self._fn.pid is not None and running_marked(), "the run's process never started"
            raise KeyboardInterrupt
        return real(self, deadline)

    def running_marked(timeout: float = 20) -> bool:
        from tensorlake_api_client.api.sandbox_processes import sandbox_process_list

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            procs = sandbox_process_list.sync(client=local_client).processes
            if any(p.status == "running" and "sleep 30 & echo" in " ".join(p.args) for p in procs):
                return True
            time.sleep(0.02)
        return False

    monkeypatch.setattr(Worker, "join_until", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run(local_client, ["sh", "-c", "sleep 30 & echo $!; wait"])
    # The run's pid is not returned on interrupt; the sandbox's list says what is still running.
    from tensorlake_api_client.api.sandbox_processes import sandbox_process_list

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        procs = sandbox_process_list.sync(client=local_client).processes
        if not any(p.status == "running" and "sleep 30 & echo" in " ".join(p.args) for p in procs):
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the interrupted run's process is still running")


# -- following output through a connection that drops ------------------------------------------


@pytest.fixture
def proxy(local_sandbox: LocalSandbox) -> Iterator[DroppingProxy]:
    port = int(local_sandbox.base_url.rsplit(":", 1)[1])
    with DroppingProxy(upstream_port=port) as p:
        yield p


def proxied(proxy: DroppingProxy, local_sandbox: LocalSandbox) -> SandboxClient:
    return sandbox_client(base_url=proxy.base_url, api_key=local_sandbox.token)


def test_a_dropped_follow_stream_resumes_without_repeating_or_losing_lines(
    local_sandbox, local_client, proxy
):
    proxy.cuts = [3, 4, 1]  # three connections die mid-stream, after 3, 4 and 1 events
    client = proxied(proxy, local_sandbox)
    with start(local_client, ["seq", "1", "20"], stdin=False) as p:
        p.wait(10)
        lines = list(LineStream[str](client, p.pid, "stdout"))
    assert lines == [str(i) for i in range(1, 21)]
    assert proxy.streams_cut == 3 and proxy.streams_seen == 4


def test_a_dropped_live_stream_resumes(local_sandbox, local_client, proxy):
    proxy.cuts = [2, 2]
    client = proxied(proxy, local_sandbox)
    with start(local_client, ["cat"]) as p:
        stream = LineStream[str](client, p.pid, "stdout")
        assert p.stdin is not None
        got = []
        for i in range(6):
            p.stdin.write(f"line {i}\n")
            got.append(next(stream))
        p.stdin.close()
        got.extend(stream)
    assert got == [f"line {i}" for i in range(6)]
    assert proxy.streams_cut == 2


def test_a_stream_that_keeps_dropping_gives_up_with_a_clear_error(local_sandbox, local_client, proxy):
    proxy.cuts, proxy.cut_all = [2], True
    client = proxied(proxy, local_sandbox)
    with start(local_client, ["seq", "1", "10"], stdin=False) as p:
        stream = LineStream[str](client, p.pid, "stdout")
        with pytest.raises(SandboxConnectionError, match="failed 6 times in a row"):
            list(stream)
        # Every connection replays the same two lines: they were yielded once, then no progress.
        assert stream.count == 2


def serves_run(client: SandboxClient) -> bool:
    """Whether the sandbox serves POST /processes/run (a body without a command: nothing starts)."""
    from tensorlake_sandbox import ProcessNotFoundError, SandboxError

    try:
        client.get_httpx_client().post("/api/v1/processes/run", json={})
    except ProcessNotFoundError:
        return False
    except SandboxError:
        pass  # 400: the body was refused, the endpoint exists
    return True


def test_a_broken_run_stream_kills_the_run_and_says_so(local_sandbox, local_client, proxy):
    assert serves_run(local_client)
    proxy.cuts = [3]  # start and 2 lines, then the connection dies
    # ... on the client's side only: the sandbox's own stream goes on, so the sandbox does not
    # stop the run by itself; only the client's kill can.
    proxy.keep_upstream = True
    client = proxied(proxy, local_sandbox)
    # It prints until it is killed: the cut comes at once, and the run cannot end by itself.
    script = "echo $$; while :; do echo 1; sleep 0.1; done"
    with pytest.raises(SandboxConnectionError, match=r"a run does not outlive its stream") as info:
        run(client, ["sh", "-c", script])
    assert re.search(r"process \d+ is killed", str(info.value))
    pid = int(re.search(r"process (\d+)", str(info.value)).group(1))
    assert wait_gone(pid)


def test_run_without_the_run_endpoint_resumes_its_follow_stream(local_sandbox, local_client, proxy):
    proxy.hide_run = True  # a sandbox without /processes/run, as older ones are
    proxy.cuts = [3]  # the follow stream of the fallback dies after 3 events
    client = proxied(proxy, local_sandbox)
    assert not serves_run(client)
    r = run(client, ["sh", "-c", "for i in 1 2 3 4 5 6; do echo $i; done; echo e >&2; exit 2"])
    assert (r.returncode, r.stdout, r.stderr) == (2, "1\n2\n3\n4\n5\n6\n", "e\n")
    assert proxy.streams_cut == 1


# -- argument checks: nothing is sent ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"args": "ls -l"}, TypeError, "['sh', '-c', 'ls -l']"),
        ({"args": []}, ValueError, "empty"),
        ({"args": ["ls", 3]}, TypeError, "args[1]"),
        ({"args": ["ls", "a\0b"]}, ValueError, "NUL"),
        ({"env": {"A": 1}}, TypeError, "env value for 'A' must be a str, got int"),
        ({"env": {"A=B": "x"}}, ValueError, "not a valid variable"),
        ({"timeout": 0}, ValueError, "positive"),
        ({"timeout": float("nan")}, ValueError, "finite"),
        ({"timeout": float("inf")}, ValueError, "finite"),
        ({"timeout": True}, TypeError, "number of seconds"),
        ({"cwd": 3}, TypeError, "cwd"),
        ({"user": {"uid": "0"}}, TypeError, "user must be"),
        ({"input": 42}, TypeError, "input must be"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_sent(recorder, kwargs, error, words):
    client = sandbox_client(base_url=recorder.url, api_key="k")
    call = {"args": ["ls"], **kwargs}
    with pytest.raises(error) as info:
        run(client, **call)
    assert words in str(info.value)
    if "timeout" not in kwargs and "input" not in kwargs:
        with pytest.raises(error):
            start(client, call["args"], env=call.get("env"), cwd=call.get("cwd"), user=call.get("user"))
    assert recorder.requests == []


def test_a_client_that_is_not_a_sandbox_client_is_refused():
    with pytest.raises(TypeError, match="SandboxClient"):
        run(object(), ["ls"])  # type: ignore[call-overload]
