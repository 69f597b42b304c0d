"""Where the sandbox benchmarks send their bytes: the local sandbox, or the loopback server.

The local sandbox (`tensorlake_sandbox.local.LocalSandbox`) runs real ``cat`` processes. It
serves from a thread of this (the orchestrating) process, which only waits on its children
while they measure, so clients and server never share a GIL. When it cannot be had, the
benchmarks fall back to the minimal loopback server and say so in their table.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from .loopback import LoopbackServer

__all__ = ["SANDBOX_ID", "Target", "local_sandbox", "loopback"]

# The official SDK addresses a proxy on localhost with ``Host: <sandbox-id>.local``.
SANDBOX_ID = "bench"


@dataclass
class Target:
    """A server to write to: its URL and key, and how to get a PID whose stdin is a pipe."""

    kind: str
    base_url: str
    token: str
    _client: Any = None
    _server: Any = None
    _pids: list[int] = field(default_factory=list)

    @property
    def is_sandbox(self) -> bool:
        return self._client is not None

    def sink(self, plural: bool = False) -> str:
        """What the bytes go into, for the report."""
        if self.is_sandbox:
            return (
                "fresh `cat` processes (stdout discarded)" if plural else "a fresh `cat` (stdout discarded)"
            )
        return "made-up PIDs" if plural else "a made-up PID"

    def start_cat(self) -> int:
        """A ``cat`` with stdin a pipe and stdout discarded (sandbox), or a made-up PID (loopback)."""
        if self._client is None:
            return 1000 + len(self._pids)
        from tensorlake_api_client.api.sandbox_processes import sandbox_process_start
        from tensorlake_api_client.models import OutputMode, StartProcessRequest, StdinMode

        r = sandbox_process_start.sync_detailed(
            client=self._client,
            body=StartProcessRequest(
                command="cat",
                args=[],
                stdin_mode=StdinMode.PIPE,
                stdout_mode=OutputMode.DISCARD,
                stderr_mode=OutputMode.DISCARD,
            ),
        )
        pid: int = r.parsed.pid
        self._pids.append(pid)
        return pid

    def kill_all(self) -> None:
        """Kill every process started here (the sandbox kills the rest when it stops)."""
        if self._client is None:
            return
        from tensorlake_api_client.api.sandbox_processes import sandbox_process_kill

        for pid in self._pids:
            with suppress(Exception):  # already exited: nothing to do
                sandbox_process_kill.sync_detailed(pid, client=self._client)
        self._pids.clear()

    def spec(self) -> dict[str, Any]:
        """What a worker needs to reach this target."""
        return {"url": self.base_url, "token": self.token, "sandbox_id": SANDBOX_ID}


@contextmanager
def loopback() -> Iterator[Target]:
    with LoopbackServer() as srv:
        yield Target("minimal loopback server (204 to every POST)", srv.base_url, "bench-token", _server=srv)


@contextmanager
def local_sandbox() -> Iterator[Target | str]:
    """The local sandbox as a `Target`, or a string saying why it is not available."""
    try:
        from tensorlake_sandbox.local import LocalSandbox
    except ImportError as e:
        yield f"tensorlake_sandbox.local is not available ({e})"
        return
    try:
        # The local sandbox answers only loopback Host names; the official SDK sends
        # ``Host: <sandbox-id>.local`` to a localhost proxy, so accept that one name too.
        sb = LocalSandbox(extra_hosts=[f"{SANDBOX_ID}.local"])
        sb.start()
    except Exception as e:
        yield f"the local sandbox did not start ({type(e).__name__}: {e})"
        return
    target = Target("local sandbox (tensorlake_sandbox.local, real `cat` processes)", sb.base_url, sb.token)
    target._client = sb.client()
    try:
        yield target
    finally:
        target.kill_all()
        sb.stop()
