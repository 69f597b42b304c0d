"""8. Line rate: lines read back from a process, ours against the official SDK's ``follow_stdout``.

Each client runs ``seq N`` in the local sandbox and reads every line of its output, in a fresh
interpreter (`bench._worker`, kind ``read_lines``), rounds interleaved. The count is checked:
a client that returns fewer (or other) lines than ``seq`` printed is reported as failing, not
timed, so the rate is only ever a rate of complete output.
"""

from __future__ import annotations

from typing import Any

from ._common import Row, Section, fmt_range, median, run_worker
from ._config import Config
from ._target import Target

__all__ = ["run"]

CLIENTS = [
    ("run", "`run(client, ['seq', N])` (one `/processes/run` stream)"),
    ("start", "`start(client, ['seq', N])`, iterating `p.stdout`"),
    ("sdk", "official SDK: `start_process` + `follow_stdout`"),
]


def run(cfg: Config, target: Target) -> Section:
    n = cfg.read_lines
    sec = Section(
        title="8. Line rate: reading a process's output",
        what=(
            f"`seq {n:,}` in the {target.kind}; each client reads every line (the count is checked), "
            f"{cfg.read_lines_rounds} rounds, each client in a fresh process per round, rounds "
            "interleaved. Wall time from the request that starts the process to the last line."
        ),
        columns=["seconds", "lines/s", "x the SDK"],
    )
    if not target.is_sandbox:
        sec.unavailable("all clients", "needs the local sandbox (real processes)")
        return sec
    secs: dict[str, list[float]] = {name: [] for name, _ in CLIENTS}
    why: dict[str, str] = {}
    for _ in range(cfg.read_lines_rounds):
        for name, _label in CLIENTS:
            if name in why:
                continue
            r: dict[str, Any] = run_worker({"kind": "read_lines", "client": name, "n": n, **target.spec()})
            if not r.get("ok"):
                why[name] = str(r.get("why"))
            else:
                secs[name].append(r["secs"])
    sdk_rate = n / median(secs["sdk"]) if secs["sdk"] and "sdk" not in why else None
    for name, label in CLIENTS:
        if name in why or not secs[name]:
            sec.unavailable(label, why.get(name, "no result"))
            continue
        rate = n / median(secs[name])
        sec.rows.append(
            Row(
                label,
                [
                    fmt_range(secs[name], "{:.2f}"),
                    f"{rate:,.0f}",
                    f"{rate / sdk_rate:.2f}x" if sdk_rate else "-",
                ],
            )
        )
    if sdk_rate:
        for name in ("run", "start"):
            if secs[name] and name not in why:
                ratio = (n / median(secs[name])) / sdk_rate
                sec.verdicts.append(
                    f"Lines read through `{name}`: {ratio:.2f}x the official SDK's `follow_stdout` rate "
                    "— goal ≥ 2.5x (an earlier goal, not restated by issue 20): "
                    f"**{'met' if ratio >= 2.5 else 'NOT met'}**."
                )
    sec.limits += [
        "Client, sandbox and `seq` share the same 2 cores; the sandbox (Python, in the orchestrating "
        "process) is part of every figure.",
    ]
    return sec
