"""The PTY sessions of one local sandbox: creating them, their limits, their removal.

Semantics of ``openapi.yaml`` (tag ``sandbox-pty``) and the Tensorlake daemon:

- at most `MAX_SESSIONS` sessions (exited ones count until removed): 429 ``TOO_MANY_SESSIONS``;
- kill (DELETE) is the daemon's: the session is hung up at once and shown dead for
  `KILL_GRACE` seconds; then everything it started still running gets SIGKILL and the session
  is removed (see `PtySession.hang_up` and `PtySession.kill`, _pty_session.py);
- with no client attached for `IDLE_TIMEOUT` seconds the process is killed; an exited
  session stays visible (and attachable: history, then the exit) for `EXITED_TTL` seconds.

Children never outlive the server: each runs in its own process group, is told by
``PR_SET_PDEATHSIG`` (Linux) to die with the server's thread, and `PtyTable.shutdown` kills
every tree (detached children included).
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import secrets
import termios
import time
from collections.abc import Iterator, Mapping
from typing import Any

from ._pty_session import KILL_GRACE, PtySession, set_size
from ._tree import MARKER, child_environment, marker_value
from ._tree import preexec as _tree_preexec

__all__ = ["EXITED_TTL", "IDLE_TIMEOUT", "MAX_SESSIONS", "PtyTable"]

MAX_SESSIONS = 64
IDLE_TIMEOUT = 300.0
EXITED_TTL = 60.0
_ID_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-"


def _child_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The server's environment without Tensorlake keys, TERM for this terminal, then the request's."""
    # TERM: the terminal's type, not the server's.
    return child_environment({"TERM": "xterm-256color", **extra})


def _take_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _preexec() -> Any:
    """Runs in the child after setsid: take the terminal as controlling tty; die with the server;
    keep what it starts below it (see _tree.py)."""
    return _tree_preexec(_take_terminal)


class PtyTable:
    """Every PTY session of one local sandbox."""

    def __init__(self, *, kill_grace: float = KILL_GRACE, exited_ttl: float = EXITED_TTL) -> None:
        self._sessions: dict[str, PtySession] = {}
        self.idle_timeout = IDLE_TIMEOUT
        self.kill_grace = kill_grace
        self.exited_ttl = exited_ttl
        self._killing: set[asyncio.Task[None]] = set()
        self._janitor: asyncio.Task[None] | None = None
        self._removals: set[asyncio.TimerHandle] = set()

    def __iter__(self) -> Iterator[PtySession]:
        return iter(list(self._sessions.values()))

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: str) -> PtySession | None:
        return self._sessions.get(session_id)

    async def create(
        self,
        command: str,
        args: list[str],
        env: Mapping[str, str],
        working_dir: str | None,
        rows: int,
        cols: int,
    ) -> PtySession:
        """Start ``command`` on a new terminal; raises OSError when it cannot be started."""
        session_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(21))
        child_env = _child_env(env)
        child_env[MARKER] = marker_value(f"t{session_id}")  # see _tree.py
        master, slave = os.openpty()
        try:
            set_size(slave, rows, cols)
            proc = await asyncio.create_subprocess_exec(
                command,
                *args,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=child_env,
                cwd=working_dir,
                start_new_session=True,
                preexec_fn=_preexec(),
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        session = PtySession(self, proc, master, command, args, rows, cols, session_id)
        self._sessions[session.session_id] = session
        if self._janitor is None:
            self._janitor = asyncio.ensure_future(self._watch_idle())
        return session

    def schedule_removal(self, session: PtySession, delay: float) -> None:
        loop = asyncio.get_running_loop()

        def remove() -> None:
            self._removals.discard(handle)
            if self._sessions.get(session.session_id) is session:
                del self._sessions[session.session_id]
                session.close()

        handle = loop.call_later(delay, remove)
        self._removals.add(handle)

    def kill(self, session: PtySession) -> None:
        """DELETE: hang up now; SIGKILL what is left and remove the session after the grace."""
        if session.killed:
            return

        async def finish() -> None:
            try:
                # Visible (dead) for the whole grace, even when the process ended at once.
                await asyncio.sleep(self.kill_grace)
                await session.kill(0)
            finally:
                if self._sessions.get(session.session_id) is session:
                    del self._sessions[session.session_id]

        session.hang_up()
        task = asyncio.ensure_future(finish())
        self._killing.add(task)
        task.add_done_callback(self._killing.discard)

    async def _watch_idle(self) -> None:
        while True:
            await asyncio.sleep(min(5.0, max(0.05, self.idle_timeout / 4)))
            now = time.monotonic()
            for session in self:
                if session.is_alive and session.idle_for(now) > self.idle_timeout:
                    self.kill(session)

    async def shutdown(self) -> None:
        if self._janitor is not None:
            self._janitor.cancel()
        for handle in self._removals:
            handle.cancel()
        for task in list(self._killing):
            task.cancel()
        sessions = list(self._sessions.values())
        self._sessions.clear()
        await asyncio.gather(*(s.kill(grace=0.5) for s in sessions), return_exceptions=True)
