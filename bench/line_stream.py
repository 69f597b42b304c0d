"""3. Line stream: ``seq N`` through a pipe, via the CLI, vs one request per line (official SDK).

The CLI run is timed from its start to its exit (start-up included), with ``--close`` and no
progress bar. Request counts come from the loopback server, which counts what it receives;
on the local sandbox the one-per-line count is the number of lines by construction.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from typing import Any

from ._common import Row, Section, fmt_range, median, run_child, run_worker
from ._config import Config
from ._target import Target
from .loopback import LoopbackServer

__all__ = ["cli_argv", "run"]


def cli_argv() -> list[str] | str:
    """How to run ``tensorlake-sandbox``, or why it cannot be run."""
    try:
        if importlib.util.find_spec("tensorlake_sandbox.cli") is None:
            return "tensorlake_sandbox.cli does not exist yet"
    except ImportError as e:
        return f"tensorlake_sandbox.cli cannot be imported ({e})"
    script = os.path.join(os.path.dirname(sys.executable), "tensorlake-sandbox")
    if os.path.exists(script):
        return [script]
    found = shutil.which("tensorlake-sandbox")
    return [found] if found else "the tensorlake-sandbox script is not installed in this venv"


def _seq(n: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["seq", str(n)], stdout=subprocess.PIPE)


def _cli_once(argv: list[str], target_url: str, token: str, pid: int, n: int) -> dict[str, Any]:
    seq = _seq(n)
    env = {**os.environ, "TENSORLAKE_API_KEY": token}
    try:
        child = run_child(
            [*argv, "stdin", target_url, str(pid), "--close", "--no-progress"],
            stdin=seq.stdout,
            env=env,
            timeout=600,
        )
    finally:
        if seq.stdout is not None:
            seq.stdout.close()
        seq.wait()
    if child.returncode != 0:
        tail = child.stderr.strip().splitlines()[-1:] or [f"exit {child.returncode}"]
        return {"ok": False, "why": f"CLI failed: {tail[0][:200]}"}
    return {"ok": True, "secs": child.secs}


def _per_line(target: Target, pid: int, n: int) -> dict[str, Any]:
    seq = _seq(n)
    try:
        spec = {"kind": "lines", "client": "sdk", **target.spec(), "pid": pid}
        return run_worker(spec, stdin=seq.stdout, timeout=900)
    finally:
        if seq.stdout is not None:
            seq.stdout.close()
        seq.wait()


def run(cfg: Config, target: Target) -> Section:
    n = cfg.lines
    nbytes = sum(len(str(i)) + 1 for i in range(1, n + 1))
    sec = Section(
        title="3. Line stream: `seq N | tensorlake-sandbox stdin URL PID --close`",
        what=(
            f"`seq {n}` ({nbytes:,} bytes) through a pipe into {target.sink()} on the {target.kind}. "
            f"CLI: {cfg.lines_rounds} runs, wall time from process start to exit (start-up included). "
            f"One request per line: the official SDK's `write_stdin` per line, "
            f"{cfg.per_line_lines:,} lines, 1 run. Request counts measured on the loopback server."
        ),
        columns=["seconds", "requests", "lines/s", "x faster than per-line"],
    )
    argv = cli_argv()
    cli_secs: list[float] = []
    cli_requests: int | None = None
    cli_why = argv if isinstance(argv, str) else None
    if isinstance(argv, list):
        for _ in range(cfg.lines_rounds):
            pid = target.start_cat()
            r = _cli_once(argv, target.base_url, target.token, pid, n)
            target.kill_all()
            if not r["ok"]:
                cli_why = r["why"]
                break
            cli_secs.append(r["secs"])
        if cli_why is None:
            with LoopbackServer() as srv:
                before = srv.stats()
                r = _cli_once(argv, srv.base_url, "bench-token", 1, n)
                after = srv.stats()
            if r["ok"]:
                # --close adds one request (the EOF); count only the stdin writes' bodies' requests.
                cli_requests = after["requests"] - before["requests"]
                got = after["bytes"] - before["bytes"]
                if got != nbytes:
                    cli_why = f"the loopback server received {got} bytes, expected {nbytes}"

    pid = target.start_cat()
    base = _per_line(target, pid, cfg.per_line_lines)
    target.kill_all()

    base_rate = base["requests"] / base["secs"] if base.get("ok") else None
    cli_label = "CLI `tensorlake-sandbox stdin … --close`"
    if cli_why:
        sec.unavailable(cli_label, cli_why)
    else:
        s = median(cli_secs)
        sec.rows.append(
            Row(
                cli_label,
                [
                    fmt_range(cli_secs, "{:.2f}"),
                    f"{cli_requests} (incl. 1 close)" if cli_requests is not None else "-",
                    f"{n / s:,.0f}",
                    f"{(n / s) / base_rate:.0f}x" if base_rate else "-",
                ],
            )
        )
    base_label = "official SDK, one `write_stdin` per line"
    if not base.get("ok") or base_rate is None:
        sec.unavailable(base_label, str(base.get("why")))
    else:
        scaled = ""
        if cfg.per_line_lines != n:
            scaled = f" (measured on {cfg.per_line_lines:,} lines; {n:,} at this rate: {n / base_rate:.1f} s)"
        sec.rows.append(
            Row(
                base_label,
                [f"{base['secs']:.2f}", f"{base['requests']:,}", f"{base_rate:,.0f}", "1x"],
                scaled.strip(),
            )
        )
    if cli_secs and base_rate:
        speedup = (n / median(cli_secs)) / base_rate
        sec.verdicts.append(
            f"CLI vs one request per line: {speedup:.0f}x faster (lines/s) — goal ≥ 20x "
            "(an earlier goal that issue 20 says still holds): "
            f"**{'met' if speedup >= 20 else 'NOT met'}**."
        )
    sec.limits += [
        "Both on the same 2 cores as the local sandbox; the per-line figure is bounded by the "
        "sandbox's per-request cost (Python server), not only the client's.",
        "The CLI figure includes its start-up (Python, imports) and the final close request.",
    ]
    return sec
