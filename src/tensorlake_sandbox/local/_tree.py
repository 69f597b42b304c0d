"""Everything a process started: finding and killing its whole tree, detached children included.

Killing a process group is not enough: a child that ran ``setsid`` (or ``nohup ... &`` in a
shell that puts jobs in their own groups, or ``disown``) left the group. Two means, both Linux
(elsewhere only the process group is killed):

1. Every process the local sandbox starts (process, run, terminal) is made a *child
   subreaper* (``PR_SET_CHILD_SUBREAPER``, set before ``exec``): while it lives, a descendant
   whose parent exits is re-parented to it, not to init, so its whole tree stays below it and
   is found by following parent pids in ``/proc``.
2. Every such process gets the variable `MARKER` in its environment, naming this server
   instance and the process (``<instance>:<owner>``); children inherit it through ``setsid``,
   ``nohup`` and ``disown``. A descendant that outlived its leader (then re-parented to init)
   is found by it. A program that clears its environment *and* outlives its leader escapes;
   a cgroup would catch that too, but needs privileges a local sandbox does not have.

The server itself is not made a subreaper: it may be embedded in another program (tests,
notebooks) whose own children must not change parents.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import sys
from collections.abc import Callable, Iterable

__all__ = ["MARKER", "kill_tree", "marker_value", "preexec"]

MARKER = "TL_LOCAL_SANDBOX_OWNER"
# Tells this server's processes from those of another local sandbox on the same machine.
_INSTANCE = secrets.token_hex(8)
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_LINUX = sys.platform == "linux" and os.path.isdir("/proc")


def marker_value(owner: str) -> str:
    """The value of `MARKER` for the process ``owner`` ("p<handle>", "t<session>") of this server."""
    return f"{_INSTANCE}:{owner}"


def _prctl() -> Callable[..., int] | None:
    if sys.platform != "linux":
        return None
    try:
        fn: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return fn


def preexec(extra: Callable[[], None] | None = None) -> Callable[[], None] | None:
    """A preexec_fn: ``extra()`` (if any), then die with the server's thread (SIGKILL) and become a
    child subreaper (Linux). None where there is nothing to do."""
    prctl = _prctl()
    if prctl is None and extra is None:
        return None
    parent = os.getpid()

    def run() -> None:
        if extra is not None:
            extra()
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
            prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
            if os.getppid() != parent:  # the server died before prctl took effect
                os._exit(137)

    return run


def _parents() -> dict[int, int]:
    """pid -> parent pid of every process in /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1:
            parents[int(entry)] = int(fields[1])
    return parents


def _marked(pids: Iterable[int], needle: bytes) -> set[int]:
    found = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if (b"\0" + environ).find(b"\0" + needle + b"\0") >= 0 or environ.endswith(b"\0" + needle):
            found.add(pid)
    return found


def tree(root: int, owner: str) -> set[int]:
    """Live pids below ``root`` (by parent links) and those marked as ``owner``'s, ``root`` excluded."""
    if not _LINUX:
        return set()
    parents = _parents()
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    needle = f"{MARKER}={marker_value(owner)}".encode()
    found |= _marked(set(parents) - found, needle)
    found.discard(root)
    found.discard(os.getpid())
    return found


def kill_tree(root: int, owner: str, sig: int = signal.SIGKILL, *, group: bool = True) -> None:
    """Send ``sig`` to ``root``'s process group (when ``group``) and to every process of its tree.

    Repeated (a few times at most) while new processes turn up: one may fork while we look.
    """
    first = tree(root, owner)  # before the group goes: parent links still lead below the leader
    if group:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(root, sig)
    signalled: set[int] = set()
    for _ in range(4):
        fresh = (first or tree(root, owner)) - signalled
        first = set()
        if not fresh:
            return
        for pid in fresh:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        signalled |= fresh
        if sig != signal.SIGKILL:
            return  # a gentle signal goes once to each; only a kill chases new forks
