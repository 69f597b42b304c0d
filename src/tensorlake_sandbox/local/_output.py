"""Captured output of one process: both streams in arrival order, compact and within a byte budget.

Lines are kept as the raw bytes the process wrote, each ending with ``\\n``, in segments of
about 64 KiB. Which stream a line came from and when it arrived are kept per run of lines
(one pipe read), not per line, so an empty line costs one byte plus a share of its run.
Decoding (UTF-8, invalid bytes replaced) happens only when lines are read, one segment at a
time, so a reader never holds more than a segment's worth of text.

The cost of a log is counted in bytes: the line bytes plus `RUN_COST` per run and
`SEGMENT_COST` per segment (measured sizes of the Python objects holding them). Beyond its
budget, the oldest segments are dropped; `first` tells how many lines were dropped, so a
follower keeps absolute line indexes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["RUN_COST", "SEGMENT_COST", "Batch", "OutputLog", "StreamName"]

StreamName = Literal["stdout", "stderr", "output"]
Stream = Literal["stdout", "stderr"]

# What one run and one segment cost beyond their line bytes (sys.getsizeof of the tuple and
# its int, plus its list slot; measured with tracemalloc on CPython 3.11).
RUN_COST = 104
SEGMENT_COST = 512
# A segment is sealed (no more lines appended) once its bytes reach this size.
_SEGMENT_BYTES = 64 * 1024


@dataclass(slots=True)
class _Segment:
    start: int  # absolute index of its first line
    data: bytearray | bytes = field(default_factory=bytearray)
    # (line count, stream, timestamp in ms) per run of lines, in order.
    runs: list[tuple[int, Stream, int]] = field(default_factory=list)
    count: int = 0

    def lines(self, lo: int, hi: int) -> Iterator[tuple[list[str], Stream, int]]:
        """Decoded lines with absolute indexes in [lo, hi), grouped by run."""
        text = bytes(self.data).decode("utf-8", "replace").split("\n")
        i = self.start
        for n, stream, ts in self.runs:
            a, b = max(i, lo), min(i + n, hi)
            if a < b:
                yield text[a - self.start : b - self.start], stream, ts
            i += n
            if i >= hi:
                return


@dataclass(frozen=True, slots=True)
class Batch:
    """Consecutive lines of one stream that arrived in one read: ``index`` is the first one's."""

    index: int
    stream: Stream
    timestamp: int
    lines: list[str]


class OutputLog:
    """The captured lines of one process, oldest first, within ``budget`` bytes."""

    def __init__(self, budget: int, on_change: Callable[[int], None] | None = None) -> None:
        self._segments: deque[_Segment] = deque()
        self.first = 0  # absolute index of the oldest line kept
        self.end = 0  # absolute index one past the newest line
        self.nbytes = 0
        self.budget = budget
        self._on_change = on_change

    def _account(self, delta: int) -> None:
        self.nbytes += delta
        if self._on_change is not None:
            self._on_change(delta)

    def add(self, stream: Stream, block: bytes, timestamp: int) -> None:
        """Append the lines of ``block`` (each ending with ``\\n``)."""
        n = block.count(b"\n")
        if n == 0:
            return
        seg = self._segments[-1] if self._segments else None
        if seg is None or isinstance(seg.data, bytes):
            seg = _Segment(self.end)
            self._segments.append(seg)
            self._account(SEGMENT_COST)
        assert isinstance(seg.data, bytearray)
        seg.data += block
        if seg.runs and seg.runs[-1][1] == stream and seg.runs[-1][2] == timestamp:
            seg.runs[-1] = (seg.runs[-1][0] + n, stream, timestamp)
            cost = len(block)
        else:
            seg.runs.append((n, stream, timestamp))
            cost = len(block) + RUN_COST
        seg.count += n
        self.end += n
        if len(seg.data) >= _SEGMENT_BYTES:
            seg.data = bytes(seg.data)  # sealed: exactly its size
        self._account(cost)
        if self.nbytes > self.budget:
            self.trim(self.budget * 3 // 4)

    def trim(self, target: int) -> None:
        """Drop the oldest segments until the log costs at most ``target`` bytes (keeps the newest)."""
        while self.nbytes > target and len(self._segments) > 1:
            seg = self._segments.popleft()
            self.first = seg.start + seg.count
            self._account(-(len(seg.data) + RUN_COST * len(seg.runs) + SEGMENT_COST))

    def clear(self) -> None:
        self.trim(0)
        if self._segments:
            seg = self._segments.popleft()
            self.first = self.end
            self._account(-(len(seg.data) + RUN_COST * len(seg.runs) + SEGMENT_COST))

    def batches(self, start: int, stop: int | None = None) -> Iterator[Batch]:
        """Lines from absolute ``start`` (or the oldest kept) up to ``stop`` (default: now), by run.

        Works on a snapshot of the segments: lines dropped or added meanwhile do not disturb it.
        """
        stop = self.end if stop is None else stop
        start = max(start, self.first)
        for seg in list(self._segments):
            if seg.start + seg.count <= start:
                continue
            if seg.start >= stop:
                break
            i = max(start, seg.start)
            for lines, stream, ts in seg.lines(start, stop):
                yield Batch(i, stream, ts, lines)
                i += len(lines)
