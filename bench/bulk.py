"""2. Bulk: a large file into ``cat`` in the local sandbox, in ≤ 2 MiB requests.

Clients: ``tensorlake_sandbox.write_stdin`` given the open file, the official SDK given
each ≤ 2 MiB block as ``bytes``, ``curl`` posting pre-split parts in one process (``--next``,
one kept-alive connection), and the generated function given one ``BytesIO`` block per call.
Each client runs in its own process; its peak RSS is that process's ``VmHWM``.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from ._common import Row, Section, fmt_range, median, run_child, run_worker
from ._config import Config, MiB
from ._target import Target

__all__ = ["run"]

CLIENTS = [
    ("write_stdin", "`tensorlake_sandbox.write_stdin(client, pid, open_file, chunk_size=2 MiB)`"),
    ("sdk", "official SDK `Sandbox.write_stdin(pid, block)`, 2 MiB `bytes` blocks"),
    ("curl", "curl, pre-split 2 MiB parts, one process (`-X POST -T part --next ...`)"),
    ("generated", "generated `sync_detailed`, one 2 MiB `BytesIO` per call"),
]


def _make_file(directory: str, size: int) -> str:
    path = os.path.join(directory, "payload.bin")
    block = os.urandom(MiB)
    with open(path, "wb") as f:
        left = size
        while left > 0:
            f.write(block[: min(left, MiB)])
            left -= MiB
    return path


def _split(path: str, chunk: int, directory: str) -> list[str]:
    parts = []
    with open(path, "rb") as f:
        i = 0
        while block := f.read(chunk):
            p = os.path.join(directory, f"part{i:05d}")
            with open(p, "wb") as out:
                out.write(block)
            parts.append(p)
            i += 1
    return parts


def _curl(target: Target, pid: int, parts: list[str]) -> dict[str, object]:
    curl = shutil.which("curl")
    if curl is None:
        return {"ok": False, "why": "curl is not installed"}
    url = f"{target.base_url}/api/v1/processes/{pid}/stdin"
    argv = [curl]
    for i, p in enumerate(parts):
        if i:
            argv.append("--next")
        argv += [
            "-sS",
            "--fail",
            "-o",
            "/dev/null",
            "-H",
            f"Authorization: Bearer {target.token}",
            "-H",
            "Content-Type: application/octet-stream",
            "-H",
            "Expect:",
            "-X",
            "POST",
            "--upload-file",
            p,
            url,
        ]
    child = run_child(argv, timeout=600)
    if child.returncode != 0:
        return {"ok": False, "why": f"curl failed: {child.stderr.strip()[-200:]}"}
    return {
        "ok": True,
        "secs": child.secs,
        "cpu_secs": child.cpu_secs,
        "rss_kib": child.hwm_kib,
        "requests": len(parts),
    }


def run(cfg: Config, target: Target) -> Section:
    size, chunk = cfg.bulk_bytes, cfg.bulk_chunk
    sec = Section(
        title="2. Bulk: file → `cat > /dev/null`",
        what=(
            f"{size // MiB} MiB of random bytes from a file on disk into {target.sink()} "
            f"per client and round, in requests of ≤ {chunk // MiB} MiB, on the "
            f"{target.kind}. {cfg.bulk_rounds} rounds, clients interleaved; median (min-max). "
            "Peak RSS: the client process's `VmHWM` (high-water mark of resident memory, imports included)."
        ),
        columns=["MiB/s", "seconds", "client CPU s", "client peak RSS MiB", "x SDK throughput"],
    )
    tput: dict[str, list[float]] = {k: [] for k, _ in CLIENTS}
    secs: dict[str, list[float]] = {k: [] for k, _ in CLIENTS}
    rss: dict[str, list[float]] = {k: [] for k, _ in CLIENTS}
    cpu: dict[str, list[float]] = {k: [] for k, _ in CLIENTS}
    why: dict[str, str] = {}
    notes: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as d:
        path = _make_file(d, size)
        parts = _split(path, chunk, d)
        for _ in range(cfg.bulk_rounds):
            for key, _label in CLIENTS:
                if key in why:
                    continue
                pid = target.start_cat()
                if key == "curl":
                    r = _curl(target, pid, parts)
                else:
                    spec = {
                        "kind": "bulk",
                        "client": key,
                        **target.spec(),
                        "pid": pid,
                        "path": path,
                        "chunk": chunk,
                    }
                    r = run_worker(spec, timeout=600)
                target.kill_all()
                if not r["ok"]:
                    why[key] = str(r["why"])
                    continue
                if "exit_note" in r:
                    notes[key] = str(r["exit_note"])
                s = float(r["secs"])  # type: ignore[arg-type]
                secs[key].append(s)
                tput[key].append(size / MiB / s)
                rss[key].append(int(r["rss_kib"]) / 1024)  # type: ignore[call-overload]
                cpu[key].append(float(r["cpu_secs"]))  # type: ignore[arg-type]

    sdk = median(tput["sdk"]) if tput["sdk"] else None
    for key, label in CLIENTS:
        if key in why:
            sec.unavailable(label, why[key])
            continue
        sec.rows.append(
            Row(
                label,
                [
                    fmt_range(tput[key]),
                    fmt_range(secs[key], "{:.2f}"),
                    fmt_range(cpu[key], "{:.2f}"),
                    fmt_range(rss[key]),
                    f"{median(tput[key]) / sdk:.2f}x" if sdk else "-",
                ],
                notes.get(key, ""),
            )
        )
    if tput["write_stdin"] and sdk:
        ours, peak = median(tput["write_stdin"]), max(rss["write_stdin"])
        a, b = tput["write_stdin"], tput["sdk"]
        overlap = min(a) <= max(b) and min(b) <= max(a)
        sec.verdicts.append(
            f"write_stdin throughput {ours:.0f} MiB/s vs official SDK {sdk:.0f} MiB/s — goal ≥ SDK "
            "on the local sandbox (an earlier goal; issue 20 judges bulk at 40 and 100 ms RTT, section 6): "
            f"**{'met' if ours >= sdk else 'NOT met'}**"
            + (
                " (their rounds' ranges overlap: the server, not the client, sets the pace here, "
                "and the ranking is within this machine's noise; compare client CPU)."
                if overlap
                else "."
            )
        )
        sec.verdicts.append(
            f"Client CPU, whole transfer: write_stdin {median(cpu['write_stdin']):.2f} s, official SDK "
            f"{median(cpu['sdk']):.2f} s (what each client costs, independent of the server's speed)."
        )
        sec.verdicts.append(
            f"write_stdin peak RSS (highest round) {peak:.0f} MiB — goal ≤ 64 MiB (an earlier goal that "
            "issue 20 says still holds): "
            f"**{'met' if peak <= 64 else 'NOT met'}**."
        )
    sec.limits += [
        f"Server: the {target.kind}, in Python, on the same 2 cores as the client: "
        "throughput is bounded by the server and by sharing the CPUs, not by the client alone.",
        "The file is in the page cache after the first read: disk speed is not measured.",
        "curl's time includes its own start-up (a few ms); Python clients' time excludes interpreter "
        "start-up and imports, but their peak RSS includes them.",
        "curl is told `Expect:` (no 100-continue wait).",
        "Client CPU: user + system time of the client process (all its threads) during the transfer "
        "(curl: its whole run): what the client costs, whatever the server's speed.",
    ]
    return sec
