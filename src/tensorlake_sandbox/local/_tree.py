"""Everything a process started: finding and killing its whole tree, detached children included;
and the environment every process the local sandbox starts gets (`child_environment`).

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
from collections.abc import Callable, Iterable, Mapping

__all__ = [
    "MARKER",
    "child_environment",
    "kill_tree",
    "kill_trees",
    "marker_value",
    "preexec",
    "tree",
    "trees",
]

MARKER = "TL_LOCAL_SANDBOX_OWNER"
# Tells this server's processes from those of another local sandbox on the same machine.
_INSTANCE = secrets.token_hex(8)
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_LINUX = sys.platform == "linux" and os.path.isdir("/proc")


# Environment variables of the server that a process never inherits: the server's own token
# and any Tensorlake credential or setting (a request may still set them explicitly).
_SCRUBBED_PREFIX = "TENSORLAKE_"


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The server's environment without Tensorlake keys, plus what the request asked for."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(_SCRUBBED_PREFIX)}
    env.update(extra)
    return env


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


def _stat(pid: int | str) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks since boot) of a process, None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    if len(fields) < 20:
        return None
    return int(fields[1]), int(fields[19])


def _processes() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time) of every process in /proc."""
    found: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(entry)) is not None:
            found[int(entry)] = stat
    return found


def _marked(pids: Iterable[int], needles: set[bytes]) -> set[int]:
    """The pids whose environment holds one of ``needles`` (``NAME=value``) as a whole entry."""
    found = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read()
        except OSError:
            continue
        if needles.intersection(environ.split(b"\0")):
            found.add(pid)
    return found


def trees(roots: Iterable[tuple[int, str]]) -> set[int]:
    """Live pids below each ``(root, owner)`` (by parent links) or marked as an owner's, roots excluded.

    One pass over /proc for all of them. Only processes started no earlier than the oldest
    root can be its descendants: the environments of older ones are not read.
    """
    roots = list(roots)
    if not _LINUX or not roots:
        return set()
    table = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = [root for root, _ in roots]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    starts = [table[root][1] for root, _ in roots if root in table]
    oldest = min(starts) if len(starts) == len(roots) else 0  # a reaped root: no bound known
    candidates = {pid for pid, (_, start) in table.items() if start >= oldest} - found
    needles = {f"{MARKER}={marker_value(owner)}".encode() for _, owner in roots}
    found |= _marked(candidates, needles)
    found.difference_update(root for root, _ in roots)
    found.discard(os.getpid())
    return found


def tree(root: int, owner: str) -> set[int]:
    """`trees` of one root."""
    return trees([(root, owner)])


def kill_trees(roots: Iterable[tuple[int, str, bool]], sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to each ``(root, owner, group)``: to the root's process group (when ``group``)
    and to every process of its tree (see `trees`), in one pass over /proc.

    A kill is repeated (a few times at most) while new processes turn up: one may fork while
    we look. A gentle signal goes once to each.
    """
    roots = list(roots)
    pending = trees((root, owner) for root, owner, _ in roots)  # before the groups go
    for root, _, group in roots:
        if group:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(root, sig)
    signalled: set[int] = set()
    for _ in range(4):
        if not pending:
            return
        for pid in pending:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        signalled |= pending
        if sig != signal.SIGKILL:
            return
        pending = trees((root, owner) for root, owner, _ in roots) - signalled


def kill_tree(root: int, owner: str, sig: int = signal.SIGKILL, *, group: bool = True) -> None:
    """`kill_trees` of one root."""
    kill_trees([(root, owner, group)], sig)
