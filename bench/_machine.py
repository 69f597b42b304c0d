"""The machine and the versions a run measured on, and how busy the machine was meanwhile."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from importlib import metadata

__all__ = ["CpuMeter", "machine_lines", "versions_lines"]

PACKAGES = [
    "tensorlake-sandbox-client",
    "tensorlake",
    "httpx",
    "httpcore",
    "h11",
    "httpx-ws",
    "uvicorn",
    "starlette",
]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _mem_gib() -> str:
    try:
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
        return f"{kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        return "RAM unknown"


def machine_lines() -> list[str]:
    return [
        f"- Machine: {_cpu_model()}, {os.cpu_count()} CPUs, {_mem_gib()}, {platform.system()} "
        f"{platform.release()}",
        f"- Python {platform.python_version()} ({sys.executable})",
    ]


def versions_lines() -> list[str]:
    parts = []
    for name in PACKAGES:
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name} (not installed)")
    curl = shutil.which("curl")
    if curl:
        try:
            out = subprocess.run([curl, "--version"], capture_output=True, text=True, timeout=10).stdout
            parts.append(" ".join(out.split()[:2]))
        except (OSError, subprocess.SubprocessError):
            pass
    return ["- Versions: " + ", ".join(parts)]


def _stat() -> tuple[float, float, float]:
    """(busy, steal, total) jiffies over all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [float(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    steal = v[7] if len(v) > 7 else 0.0
    total = sum(v[:8])
    return total - idle - steal, steal, total


def _own_cpu() -> float:
    """CPU seconds of this process and its reaped children."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


class CpuMeter:
    """How much of the machine this run had: other work's CPU share, steal time, load."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self._stat0 = _stat()
        self._own0 = _own_cpu()
        self._load0 = os.getloadavg()

    def finish(self) -> list[str]:
        busy0, steal0, total0 = self._stat0
        busy1, steal1, total1 = _stat()
        hz = os.sysconf("SC_CLK_TCK")
        ncpu = os.cpu_count() or 1
        wall = time.perf_counter() - self.t0
        busy = (busy1 - busy0) / hz
        own = _own_cpu() - self._own0
        other = max(0.0, busy - own)
        steal = (steal1 - steal0) / max(1.0, total1 - total0) * 100
        load1 = os.getloadavg()
        return [
            f"- Machine load during the run: this run used {own / wall / ncpu * 100:.0f}% of the CPUs, "
            f"**other work {other / wall / ncpu * 100:.0f}%**, steal {steal:.1f}%; load average "
            f"{self._load0[0]:.2f} at start, {load1[0]:.2f} at end"
            + (
                " — **machine shared with other work: wall-time figures are noisy**"
                if other / wall > 0.1
                else ""
            ),
        ]
