"""How big each benchmark is: the full run (``make bench``) and ``--quick`` (harness checks)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Config"]

MiB = 1024 * 1024


@dataclass(frozen=True)
class Config:
    quick: bool = False
    # 1. small writes
    small_n: int = 2000
    small_rounds: int = 5
    small_warmup: int = 100
    pair_rounds: int = 3
    pair_block: int = 100
    pair_blocks: int = 20
    # 2. bulk
    bulk_bytes: int = 256 * MiB
    bulk_chunk: int = 2 * MiB
    bulk_rounds: int = 3
    # 3. line stream
    lines: int = 100_000
    lines_rounds: int = 3
    # per-line baseline: lines sent one request each (the whole stream when equal to `lines`)
    per_line_lines: int = 100_000
    # 4. start-up
    startup_runs: int = 15
    # 5. fan-out
    fanout_procs: int = 32
    fanout_writes: int = 20
    fanout_rounds: int = 3
    # 6-7. over a network (latency proxy)
    wan_rtts: tuple[int, ...] = (0, 10, 40, 100)
    wan_bulk_bytes: int = 64 * MiB  # at RTT <= 10 ms
    wan_bulk_bytes_far: int = 32 * MiB  # at 40 and 100 ms (16 round trips at the limit)
    wan_rounds: int = 3
    # 8. line rate (lines read back)
    read_lines: int = 1_000_000
    read_lines_rounds: int = 3

    @classmethod
    def make(cls, quick: bool) -> Config:
        if not quick:
            return cls()
        return cls(
            quick=True,
            small_n=200,
            small_rounds=2,
            small_warmup=20,
            pair_rounds=1,
            pair_blocks=2,
            bulk_bytes=16 * MiB,
            bulk_rounds=1,
            lines=2_000,
            lines_rounds=1,
            per_line_lines=2_000,
            startup_runs=3,
            fanout_procs=8,
            fanout_writes=5,
            fanout_rounds=1,
            wan_bulk_bytes=8 * MiB,
            wan_bulk_bytes_far=4 * MiB,
            wan_rounds=1,
            read_lines=20_000,
            read_lines_rounds=1,
        )
