"""Shared fixtures: one local sandbox per test session (real HTTP on 127.0.0.1, real processes)."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tensorlake_api_client.api.sandbox_processes import (
    sandbox_process_get,
    sandbox_process_kill,
    sandbox_process_list,
    sandbox_process_start,
)
from tensorlake_api_client.models import (
    OutputMode,
    ProcessInfo,
    StartProcessRequest,
    StdinMode,
)
from tensorlake_api_client.models.start_process_request_env import StartProcessRequestEnv
from tensorlake_sandbox import SandboxClient
from tensorlake_sandbox.local import LocalSandbox

from .closing import close_all
from .servers.fault import FaultServer
from .servers.recording import RecordingApp
from .servers.uvicorn_thread import serve_in_thread

# A suite started in the background by a non-interactive shell (`make test &`) inherits SIGINT
# ignored, and so would every process it starts: the Ctrl-C tests (CLI, interrupted writes,
# the remote trap) would then wait for a KeyboardInterrupt that never comes. A handled signal
# is reset to its default in the processes the tests start.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def local_sandbox() -> Iterator[LocalSandbox]:
    """A local sandbox on a free loopback port, started once per test session."""
    with LocalSandbox(port=0) as sandbox:
        yield sandbox


@pytest.fixture(scope="session")
def local_client(local_sandbox: LocalSandbox) -> Iterator[SandboxClient]:
    """The shim client for `local_sandbox`, for the generated functions."""
    client = local_sandbox.client()
    yield client
    client.get_httpx_client().close()


StartFn = Callable[..., ProcessInfo]


@pytest.fixture
def start_process(local_client: SandboxClient) -> Iterator[StartFn]:
    """Start a process through the generated function; every process started is killed after the test.

    ``start_process("sh", "-c", "cat", stdin="pipe", env={...}, working_dir=..., stdout="discard")``
    """
    started: list[int] = []

    def start(
        command: str,
        *args: str,
        stdin: str | None = None,
        stdout: str | None = None,
        stderr: str | None = None,
        env: dict[str, str] | None = None,
        working_dir: str | None = None,
    ) -> ProcessInfo:
        kwargs: dict[str, Any] = {"command": command, "args": list(args)}
        if stdin is not None:
            kwargs["stdin_mode"] = StdinMode(stdin)
        if stdout is not None:
            kwargs["stdout_mode"] = OutputMode(stdout)
        if stderr is not None:
            kwargs["stderr_mode"] = OutputMode(stderr)
        if env is not None:
            kwargs["env"] = StartProcessRequestEnv.from_dict(env)
        if working_dir is not None:
            kwargs["working_dir"] = working_dir
        info = sandbox_process_start.sync(client=local_client, body=StartProcessRequest(**kwargs))
        started.append(info.pid)
        return info

    yield start
    listed = sandbox_process_list.sync(client=local_client)
    running = {p.pid for p in listed.processes if p.status == "running"}
    for pid in started:
        if pid in running:
            sandbox_process_kill.sync_detailed(pid, client=local_client)


@pytest.fixture
def wait_finished(local_client: SandboxClient) -> Callable[[int], ProcessInfo]:
    """Poll a process until its status is no longer ``running`` (at most 10 s)."""

    def wait(pid: int, timeout: float = 10.0) -> ProcessInfo:
        deadline = time.monotonic() + timeout
        while True:
            info = sandbox_process_get.sync(pid, client=local_client)
            if info.status != "running":
                return info
            if time.monotonic() > deadline:
                raise AssertionError(f"process {pid} still running after {timeout} s")
            time.sleep(0.02)

    return wait


@pytest.fixture(scope="module")
def recording_server() -> Iterator[RecordingApp]:
    """A recording HTTP server on 127.0.0.1 (its URL in ``.url``), one per test module."""
    app = RecordingApp()
    with serve_in_thread(app) as url:
        app.url = url  # type: ignore[attr-defined]
        yield app


@pytest.fixture
def recorder(recording_server: RecordingApp) -> RecordingApp:
    """The module's recording server, emptied for this test."""
    recording_server.reset()
    return recording_server


@pytest.fixture
def make_server() -> Iterator[Callable[..., FaultServer]]:
    """Start misbehaving servers (tests/servers/fault.py) for one test; all stop after it."""
    servers: list[FaultServer] = []

    def make(**kwargs: object) -> FaultServer:
        server = FaultServer(**kwargs).start()  # type: ignore[arg-type]
        servers.append(server)
        return server

    yield make
    close_all()  # the test's clients first: a server stops without waiting for their connections
    for s in servers:
        s.stop()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port where every connection is refused, for the whole test.

    The socket is bound but never listened on: the kernel refuses connections to it, and no other
    socket (another test worker's server, say) can take the port while the test runs, as it could
    if the port were only picked and released.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


class Done:
    """What `cli_main` returns: the fields of `subprocess.CompletedProcess` the tests read."""

    def __init__(self, returncode: int, stdout: bytes, stderr: bytes):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def cli_main(monkeypatch, capfd):
    """The CLI's main() in this process, with ``env`` and ``input`` as its environment and stdin.

    The same code as the installed command without an interpreter start-up (half a second each,
    more under load); each command also runs as a real process in tests/test_cli*.py.
    """
    from tensorlake_sandbox.cli import main

    def run_in_process(args, env, input=b""):
        for name in ("TENSORLAKE_API_KEY",):
            if name in env:
                monkeypatch.setenv(name, env[name])
            else:
                monkeypatch.delenv(name, raising=False)
        read, write = os.pipe()
        os.write(write, input)  # small inputs only: the pipe holds them
        os.close(write)
        with open(read, "rb", buffering=0) as stdin:
            monkeypatch.setattr(sys, "stdin", stdin)
            capfd.readouterr()
            try:
                code = main(args)
            except SystemExit as exc:  # argparse's usage errors and --help
                code = int(exc.code or 0)
            out, err = capfd.readouterr()
        monkeypatch.setattr(sys, "stdin", sys.__stdin__)
        return Done(code, out.encode(), err.encode())

    return run_in_process


@pytest.fixture(autouse=True)
def _close_test_clients() -> Iterator[None]:
    """Close the clients a test registered with `tests.closing.close_after_test`."""
    yield
    close_all()


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail, naming them, if threads that are not daemons outlive the tests.

    The interpreter waits for such threads at exit, past pytest-timeout: one left behind by a
    failing test (a terminal's receiving thread, say) would hang the whole run. Each gets a few
    seconds to end first; `make test` also stops a run that hangs anyway (TEST_TIMEOUT).
    """
    deadline = time.monotonic() + 5
    lingering = []
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            lingering.append(thread)
    names = ", ".join(repr(t) for t in lingering)
    worker_output = getattr(session.config, "workeroutput", None)
    if worker_output is not None:  # an xdist worker: the controller reports it (below)
        worker_output["lingering_threads"] = names
        return
    names = ", ".join(filter(None, [names, *_LINGERING_IN_WORKERS]))
    if names:
        sys.stderr.write(f"\nthreads that are not daemons outlived the tests: {names}\n")
        sys.stderr.flush()
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_LINGERING_IN_WORKERS: list[str] = []


def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist, on the controller: a worker has finished; keep what it found left behind."""
    output = getattr(node, "workeroutput", {})
    if output.get("lingering_threads"):
        worker = getattr(node, "workerinput", {}).get("workerid", "?")
        _LINGERING_IN_WORKERS.append(f"{worker}: {output['lingering_threads']}")


def pytest_unconfigure(config: pytest.Config) -> None:
    """Exit now rather than wait forever for a lingering thread (reported by pytest_sessionfinish)."""
    if any(not t.daemon and t.is_alive() for t in threading.enumerate() if t is not threading.main_thread()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(pytest.ExitCode.TESTS_FAILED))
