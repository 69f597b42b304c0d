"""4. Start-up: ``tensorlake-sandbox --help`` vs ``python -c "import tensorlake.sandbox"``.

Hyperfine-like: each command is run repeatedly as a fresh process, commands interleaved, one
untimed warm-up run each; the figure is the median wall time from spawn to exit.
"""

from __future__ import annotations

import sys
import time

from ._common import Row, Section, fmt_range, median, run_child
from ._config import Config
from .line_stream import cli_argv

__all__ = ["run"]


def run(cfg: Config) -> Section:
    py = sys.executable
    cli = cli_argv()
    commands: list[tuple[str, list[str] | str]] = [
        ("`tensorlake-sandbox --help`", [*cli, "--help"] if isinstance(cli, list) else cli),
        ('`python -c "import tensorlake.sandbox"` (official SDK)', [py, "-c", "import tensorlake.sandbox"]),
        ('`python -c "import tensorlake_sandbox"` (this library)', [py, "-c", "import tensorlake_sandbox"]),
        ('`python -c "import httpx"`', [py, "-c", "import httpx"]),
        ('`python -c "pass"` (interpreter alone)', [py, "-c", "pass"]),
    ]
    sec = Section(
        title="4. Start-up",
        what=(
            f"Each command spawned {cfg.startup_runs} times (after 1 untimed warm-up), commands "
            "interleaved; wall time from spawn to exit, median (min-max). Same interpreter as the run."
        ),
        columns=["ms", "x SDK import"],
    )
    times: dict[str, list[float]] = {label: [] for label, _ in commands}
    why: dict[str, str] = {}
    for i in range(cfg.startup_runs + 1):
        for label, argv in commands:
            if isinstance(argv, str):
                why[label] = argv
                continue
            if label in why:
                continue
            t0 = time.perf_counter()
            child = run_child(argv, timeout=60)
            ms = (time.perf_counter() - t0) * 1000
            if child.returncode != 0:
                last = (child.stderr.strip().splitlines() or [""])[-1]
                why[label] = f"exit {child.returncode}: {last[:200]}"
            elif i:
                times[label].append(ms)
    sdk_label = commands[1][0]
    sdk = median(times[sdk_label]) if times[sdk_label] else None
    for label, _ in commands:
        if label in why:
            sec.unavailable(label, why[label])
            continue
        sec.rows.append(
            Row(label, [fmt_range(times[label]), f"{median(times[label]) / sdk:.2f}x" if sdk else "-"])
        )
    cli_label = commands[0][0]
    if times[cli_label] and sdk:
        r = median(times[cli_label]) / sdk
        sec.verdicts.append(
            f"`tensorlake-sandbox --help` / `import tensorlake.sandbox` = {r:.2f} — goal ≤ 0.5 "
            "(an earlier goal that issue 20 says still holds): "
            f"**{'met' if r <= 0.5 else 'NOT met'}**."
        )
    sec.limits += [
        "Warm file cache (no cold-disk start); includes interpreter start-up, which both sides pay.",
        "Process spawn on a shared 2-core machine: single runs vary by tens of ms; compare medians.",
    ]
    return sec
