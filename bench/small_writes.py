"""1. Per-call cost: many 16-byte writes to the minimal loopback server, one client per process.

Each client runs in a fresh interpreter per round (rounds interleaved, so drift in machine
load falls on every client alike), makes untimed warm-up calls, then times ``n`` calls.
Wall time is what a caller waits; client CPU time (all threads of the client process) is
what the client itself costs and is less disturbed by other work on the machine.
"""

from __future__ import annotations

from typing import Any

from ._common import Row, Section, fmt_range, median, run_worker
from ._config import Config
from .loopback import LoopbackServer

__all__ = ["run"]

# (key in bench._worker.CLIENTS, label)
CLIENTS = [
    ("generated", "(a) generated `sync_detailed` + shim client (`sandbox_client`)"),
    ("httpx", "(b) bare `httpx.Client.post`"),
    ("sdk", "(c) official SDK `Sandbox.write_stdin` (tensorlake, Rust)"),
    ("write_stdin", "(d) `tensorlake_sandbox.write_stdin`"),
    ("generated-plain", "generated `sync_detailed` + generated `AuthenticatedClient` (no shim)"),
    ("generated+httpx", "(a) on httpx's own `HTTPTransport` instead of the engine's"),
]


def run(cfg: Config) -> Section:
    n, rounds, size = cfg.small_n, cfg.small_rounds, 16
    sec = Section(
        title="1. Small writes: per-call cost",
        what=(
            f"{n:,} writes of {size} bytes per round, after {cfg.small_warmup} untimed warm-up calls, "
            f"{rounds} rounds (each client in a fresh process per round, rounds interleaved), to the "
            "minimal loopback server (`bench/loopback.py`, its own process, 204 to every POST). "
            "Figures: median over rounds (min-max)."
        ),
        columns=["µs/call wall", "µs/call client CPU", "wall x SDK", "CPU x SDK", "Python calls/write"],
    )
    walls: dict[str, list[float]] = {k: [] for k, _ in CLIENTS}
    cpus: dict[str, list[float]] = {k: [] for k, _ in CLIENTS}
    calls: dict[str, float] = {}
    why: dict[str, str] = {}
    notes: dict[str, str] = {}
    with LoopbackServer() as srv:
        for _ in range(rounds):
            for key, _label in CLIENTS:
                if key in why:
                    continue
                spec: dict[str, Any] = {
                    "kind": "small",
                    "client": key,
                    "url": srv.base_url,
                    "token": "bench-token",
                    "sandbox_id": "bench",
                    "pid": 1,
                    "n": n,
                    "warmup": cfg.small_warmup,
                    "size": size,
                }
                r = run_worker(spec, timeout=300)
                if not r["ok"]:
                    why[key] = r["why"]
                    continue
                if "exit_note" in r:
                    notes[key] = str(r["exit_note"])
                walls[key].append(r["wall_us"])
                cpus[key].append(r["cpu_us"])
                calls[key] = r["calls"]

        # (a) vs (b) interleaved in one process: the steadiest measure of the shim's overhead.
        pair_keys = ["generated", "httpx", "generated-plain", "sdk", "write_stdin"]
        pairs: list[dict[str, float]] = []
        for _ in range(cfg.pair_rounds):
            r = run_worker(
                {
                    "kind": "pair",
                    "clients": pair_keys,
                    "url": srv.base_url,
                    "token": "bench-token",
                    "sandbox_id": "bench",
                    "pid": 1,
                    "size": size,
                    "warmup": cfg.small_warmup,
                    "block": cfg.pair_block,
                    "blocks": cfg.pair_blocks,
                },
                timeout=300,
            )
            if r["ok"]:
                pairs.append(r["cpu_us"])

    sdk_wall = median(walls["sdk"]) if walls["sdk"] else None
    sdk_cpu = median(cpus["sdk"]) if cpus["sdk"] else None
    for key, label in CLIENTS:
        if key in why:
            sec.unavailable(label, why[key])
            continue
        w, c = median(walls[key]), median(cpus[key])
        sec.rows.append(
            Row(
                label,
                [
                    fmt_range(walls[key]),
                    fmt_range(cpus[key]),
                    f"{w / sdk_wall:.1f}x" if sdk_wall else "-",
                    f"{c / sdk_cpu:.1f}x" if sdk_cpu else "-",
                    f"{calls[key]:,.0f}",
                ],
                notes.get(key, ""),
            )
        )

    if walls["generated"] and walls["httpx"]:
        rw = median(walls["generated"]) / median(walls["httpx"])
        rc = median(cpus["generated"]) / median(cpus["httpx"])
        rn = calls["generated"] / calls["httpx"]
        sec.verdicts.append(
            f"Separate processes (table above): (a)/(b) = {rw:.2f} wall, {rc:.2f} client CPU; "
            f"function calls per write {rn:.3f} (a count, unaffected by machine load)."
        )
    if pairs:
        ab = [p["generated"] / p["httpx"] for p in pairs]
        plain = [p["generated-plain"] / p["httpx"] for p in pairs]
        sec.verdicts.append(
            f"Interleaved in one process ({cfg.pair_blocks} alternating blocks of {cfg.pair_block} writes "
            f"per client, {len(pairs)} processes): (a)/(b) client CPU = {fmt_range(ab, '{:.2f}')}; the "
            f"generated client without the shim / (b) = {fmt_range(plain, '{:.2f}')} (the earlier "
            f"≤ 1.10 for (a)/(b) gave way to issue 20's stricter 'not above bare httpx', judged below)."
        )
        # Issue 20: CPU per 16-byte write reported beside the SDK's and bare httpx's; not above
        # bare httpx. Judged on both of this library's ways to write, (a) and (d).
        us = {k: median([p[k] for p in pairs]) for k in ("httpx", "generated", "write_stdin")}
        vs_httpx = {k: median([p[k] / p["httpx"] for p in pairs]) for k in ("generated", "write_stdin")}
        worst = max(vs_httpx.values())
        sdk_part = ""
        if all("sdk" in p for p in pairs):
            sdk_us = median([p["sdk"] for p in pairs])
            xa = [p["generated"] / p["sdk"] for p in pairs]
            xd = [p["write_stdin"] / p["sdk"] for p in pairs]
            sdk_part = (
                f"; against the official SDK's {sdk_us:.0f} µs: (a) {fmt_range(xa, '{:.2f}')}x, "
                f"(d) {fmt_range(xd, '{:.2f}')}x"
            )
        sec.verdicts.append(
            "Client CPU per 16-byte write, interleaved in one process (same blocks): "
            f"(a) {us['generated']:.0f} µs, (d) `write_stdin` {us['write_stdin']:.0f} µs; against bare "
            f"httpx's {us['httpx']:.0f} µs: (a) {vs_httpx['generated']:.2f}x, (d) "
            f"{vs_httpx['write_stdin']:.2f}x{sdk_part} — goal (issue 20) reported beside the SDK's and "
            f"bare httpx's, and not above bare httpx's (≤ 1.00x, (a) and (d)): "
            f"**{'met' if worst <= 1.0 else 'NOT met'}**."
        )
        if sdk_part:
            sec.verdicts.append(
                "Issue 12's ≤ 2.5x the SDK's CPU per write was reached only with the pyreqwest fast path, "
                "a second HTTP stack that crashed the interpreter; issue 20 removed it and sets no ratio "
                "to the SDK here."
            )
    if walls["generated+httpx"] and walls["generated"]:
        sec.verdicts.append(
            "The engine's transport behind the generated function: "
            f"{median(walls['generated']) / median(walls['generated+httpx']):.2f}x the wall time and "
            f"{median(cpus['generated']) / median(cpus['generated+httpx']):.2f}x the client CPU "
            "of the same call on httpx's own transport."
        )
    sec.limits += [
        "Loopback only: no network latency, no TLS; a real sandbox adds a round trip that dwarfs "
        "these differences for single writes.",
        "The server is Python (asyncio); its own per-request cost is part of every wall figure "
        "and is the same for every client.",
        "CPU time counts all threads of the client process (the SDK's Rust runtime included).",
    ]
    return sec
