"""What every benchmark shares: running a measurement in a child process, rows, medians."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ROOT",
    "Child",
    "Row",
    "Section",
    "fmt_range",
    "fmt_vs_goal",
    "median",
    "run_child",
    "run_worker",
]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@dataclass
class Row:
    """One line of a table: a label, one cell per column, and an optional note."""

    label: str
    cells: list[str]
    note: str = ""


@dataclass
class Section:
    """One benchmark's table, with what it measured, its goal and what limits its figures."""

    title: str
    what: str
    columns: list[str]
    rows: list[Row] = field(default_factory=list)
    verdicts: list[str] = field(default_factory=list)
    limits: list[str] = field(default_factory=list)
    label: str = "client"  # the first column's heading

    def unavailable(self, label: str, why: str) -> None:
        self.rows.append(Row(label, ["not available"] + ["-"] * (len(self.columns) - 1), why))


@dataclass
class Child:
    """A finished child process: its output, exit status, wall time, peak RSS (sampled) and CPU."""

    stdout: str
    stderr: str
    returncode: int
    secs: float
    hwm_kib: int
    cpu_secs: float = 0.0


def _vm_hwm_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def run_child(
    argv: Sequence[str],
    *,
    stdin: Any = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> Child:
    """Run ``argv`` to completion, measuring its peak RSS and CPU time.

    Peak RSS is the child's ``VmHWM``, sampled every 10 ms while it runs (``ru_maxrss`` from
    wait4 would not do: it counts the memory of this process that the child had between fork
    and exec). CPU time is ``wait4``'s user + system time of the child alone.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdin=stdin, stdout=out, stderr=err, env=env, cwd=ROOT)
        hwm = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise RuntimeError(f"{argv[0]} timed out after {timeout:.0f} s")
            sample = _vm_hwm_kib(proc.pid)
            if sample is not None:
                hwm = max(hwm, sample)
            time.sleep(0.01)
        secs = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Child(
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            proc.returncode,
            secs,
            hwm,
            usage.ru_utime + usage.ru_stime,
        )


def run_worker(
    spec: dict[str, Any], *, stdin: Any = subprocess.DEVNULL, timeout: float = 600
) -> dict[str, Any]:
    """Run one `bench._worker` measurement in a fresh interpreter and return its JSON result.

    A worker that fails (not merely "unavailable") comes back as ``{"ok": False, "why": ...}``
    with the end of its stderr, so that one broken client never stops the run.
    """
    try:
        child = run_child(
            [sys.executable, "-m", "bench._worker", json.dumps(spec)], stdin=stdin, timeout=timeout
        )
    except RuntimeError as e:
        return {"ok": False, "why": str(e)}
    lines = child.stdout.strip().splitlines()
    if lines:
        try:
            result: dict[str, Any] = json.loads(lines[-1])
        except json.JSONDecodeError:
            pass
        else:
            result["child_secs"] = child.secs
            result["hwm_kib"] = child.hwm_kib
            result["child_cpu_secs"] = child.cpu_secs
            if child.returncode != 0:
                # The measurement finished and was printed; the process died on its way out
                # (seen once with the official SDK's async client at interpreter exit).
                first = next((x for x in child.stderr.splitlines() if x.strip()), "")
                result["exit_note"] = f"crashed after measuring (exit {child.returncode}): {first[:120]}"
            return result
    tail = " | ".join(child.stderr.strip().splitlines()[-2:]) or f"exit {child.returncode}"
    return {"ok": False, "why": f"failed: {tail[-300:]}"}


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def fmt_range(values: Sequence[float], fmt: str = "{:.0f}") -> str:
    """``median (min-max)``; just the value when there is one."""
    if not values:
        return "-"
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(median(values))} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def fmt_vs_goal(value: float, goal: float, *, at_least: bool) -> str:
    """``value`` to 2 decimals, or 3 when 2 would hide which side of ``goal`` it is on
    (0.998 shown as "1.00" beside "goal ≥ 1.0: NOT met")."""
    shown = float(f"{value:.2f}")
    same = (value >= goal) == (shown >= goal) if at_least else (value <= goal) == (shown <= goal)
    return f"{value:.2f}" if same else f"{value:.3f}"
