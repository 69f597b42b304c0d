"""``python -m bench``: this library against Tensorlake's official SDK, side by side; writes BENCHMARKS.md.

    .venv-bench/bin/python -m bench            # the full run (make bench), ~5-10 minutes
    .venv-bench/bin/python -m bench --quick    # small counts: checks the harness, figures meaningless
    .venv-bench/bin/python -m bench --only small,startup --output /tmp/b.md
    .venv/bin/python -m bench --only size --output /tmp/size.md   # code size alone, < 1 s

A benchmark whose pieces are missing reports "not available: <why>" instead of failing; a
benchmark that breaks is reported the same way, with its error, and the run goes on.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack

from . import bulk, code_size, fanout, line_rate, line_stream, small_writes, startup, wan
from ._common import ROOT, Section
from ._config import Config
from ._machine import CpuMeter, machine_lines, versions_lines
from ._target import Target, local_sandbox, loopback

NAMES = ["small", "bulk", "lines", "startup", "fanout", "wan", "linerate", "size"]


def _render(sections: list[Section], header: list[str], footer: list[str]) -> str:
    out = [*header]
    for sec in sections:
        out += ["", f"## {sec.title}", "", sec.what, ""]
        out.append(f"| {sec.label} | " + " | ".join(sec.columns) + " | note |")
        out.append("|---|" + "---|" * len(sec.columns) + "---|")
        for row in sec.rows:
            out.append(
                f"| {row.label} | "
                + " | ".join(row.cells)
                + f" | {' '.join(row.note.split()).replace('|', '/')} |"
            )
        if sec.verdicts:
            out.append("")
            out += [f"- {v}" for v in sec.verdicts]
        if sec.limits:
            out += ["", "What limits these figures:", ""]
            out += [f"- {x}" for x in sec.limits]
    out += ["", *footer]
    return "\n".join(out) + "\n"


def _guard(title: str, fn: Callable[[], Section | list[Section]]) -> list[Section]:
    """Run one benchmark; a crash becomes a section saying so, and the run goes on."""
    t0 = time.perf_counter()
    print(f"[bench] {title} ...", file=sys.stderr, flush=True)
    try:
        out = fn()
        secs = out if isinstance(out, list) else [out]
    except Exception as e:
        traceback.print_exc()
        sec = Section(title=title, what="", columns=["result"])
        sec.unavailable(title, f"the benchmark failed: {type(e).__name__}: {e}")
        secs = [sec]
    print(f"[bench] {title}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    return secs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small counts, to check the harness")
    ap.add_argument("--only", default=",".join(NAMES), help=f"comma-separated subset of {','.join(NAMES)}")
    ap.add_argument("--output", default=None, help="where to write the report (default BENCHMARKS.md)")
    args = ap.parse_args(argv)
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = set(only) - set(NAMES)
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    cfg = Config.make(args.quick)
    output = args.output or os.path.join(ROOT, "BENCHMARKS.md")
    started = datetime.datetime.now(datetime.UTC)
    meter = CpuMeter()
    sections: list[Section] = []
    with ExitStack() as stack:
        need_target = any(x in only for x in ("bulk", "lines", "fanout", "wan", "linerate"))
        target: Target | None = None
        target_note = ""
        if need_target:
            sb = stack.enter_context(local_sandbox())
            if isinstance(sb, str):
                target_note = (
                    f"Local sandbox not available ({sb}): sandbox benchmarks ran on the loopback server."
                )
                target = stack.enter_context(loopback())
            else:
                target = sb
        runners: dict[str, tuple[str, Callable[[], Section | list[Section]]]] = {
            "small": ("1. Small writes", lambda: small_writes.run(cfg)),
            "startup": ("4. Start-up", lambda: startup.run(cfg)),
            "size": ("9. Code size", code_size.run),
        }
        if target is not None:
            t = target
            runners["bulk"] = ("2. Bulk", lambda: bulk.run(cfg, t))
            runners["lines"] = ("3. Line stream", lambda: line_stream.run(cfg, t))
            runners["fanout"] = ("5. Fan-out", lambda: fanout.run(cfg, t))
            plot = os.path.join(os.path.dirname(os.path.abspath(output)), "BENCHMARKS-wan.png")
            runners["wan"] = ("6-7. Over a network", lambda: wan.run(cfg, t, plot))
            runners["linerate"] = ("8. Line rate", lambda: line_rate.run(cfg, t))
        for name in sorted(only, key=NAMES.index):
            title, fn = runners[name]
            sections += _guard(title, fn)
    elapsed = time.perf_counter() - meter.t0
    load = meter.finish()
    header = [
        "# Benchmarks: tensorlake-sandbox-client vs Tensorlake's official SDK",
        "",
        "Written by `make bench` (`python -m bench`); every figure below was measured by the run "
        "that wrote this file, and the next run replaces it whole.",
        "",
        f"- Run: {started:%Y-%m-%d %H:%M} UTC, {elapsed / 60:.1f} min"
        + (" — **`--quick`: small counts, figures not meaningful**" if cfg.quick else ""),
        *machine_lines(),
        *load,
        *versions_lines(),
    ]
    if target_note:
        header.append(f"- {target_note}")
    footer = [
        "Medians are over repeated runs (rounds); (min-max) shows their spread. Ratios are of medians.",
    ]
    goals = [
        f"- {sec.title.split(':')[0]}: {v}" for sec in sections for v in sec.verdicts if "goal" in v.lower()
    ]
    if goals:
        header += ["", "## Goals at a glance", "", *goals]
    text = _render(sections, header, footer)
    with open(output, "w") as f:
        f.write(text)
    print(text)
    print(f"[bench] wrote {output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
