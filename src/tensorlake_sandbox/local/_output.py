"""Captured output of one process: both streams in arrival order, compact and within a byte budget.

Lines are kept as the raw bytes the process wrote, each ending with ``\\n``, in segments of
about 64 KiB. Which stream a line came from and when it arrived are kept per run of lines
(one pipe read), not per line, so an empty line costs one byte plus a share of its run.
Decoding (UTF-8, invalid bytes replaced) happens only when lines are read, one segment at a
time, so a reader never holds more than a segment's worth of text.

Positions. Every line has an absolute index in the combined log (``index``) and a position
in its own stream (``position``: the n-th stdout line, the n-th stderr line); follow events
carry the position of the stream followed as their SSE ``id``, so a reader can tell a gap
and resume exactly. A line longer than the longest kept whole is stored as pieces; each
piece but the last is marked ``continued`` (it goes on in the next line of its stream).

The cost of a log is counted in bytes: the line bytes plus `RUN_COST` per run and
`SEGMENT_COST` per segment (measured sizes of the Python objects holding them). Beyond its
budget, the oldest segments are dropped, but never one that an attached reader has not read
yet (``floor``): the owner then stops reading the process's pipes instead (backpressure).
`first` tells how many lines were dropped, so a follower keeps absolute line indexes.
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
    out_start: int  # stdout lines before its first line
    data: bytearray | bytes = field(default_factory=bytearray)
    # (line count, stream, timestamp in ms, last line continued) per run of lines, in order.
    runs: list[tuple[int, Stream, int, bool]] = field(default_factory=list)
    count: int = 0
    out_count: int = 0

    def lines(self, lo: int, hi: int) -> Iterator[tuple[list[str], Stream, int, bool, int, int]]:
        """Decoded lines with absolute indexes in [lo, hi), grouped by run.

        Yields (lines, stream, timestamp, continued, first index, first position in its stream).
        """
        text = bytes(self.data).decode("utf-8", "replace").split("\n")
        i = self.start
        out = self.out_start
        for n, stream, ts, cont in self.runs:
            a, b = max(i, lo), min(i + n, hi)
            if a < b:
                pos = (out if stream == "stdout" else i - out) + (a - i)
                yield text[a - self.start : b - self.start], stream, ts, cont and b == i + n, a, pos
            i += n
            if stream == "stdout":
                out += n
            if i >= hi:
                return


@dataclass(frozen=True, slots=True)
class Batch:
    """Consecutive lines of one stream that arrived in one read.

    ``index`` is the first one's absolute index, ``position`` its position in its stream;
    ``continued`` tells that the last line is a piece of a longer line that goes on in the
    next line of the same stream.
    """

    index: int
    stream: Stream
    timestamp: int
    lines: list[str]
    position: int = 0
    continued: bool = False


class OutputLog:
    """The captured lines of one process, oldest first, within ``budget`` bytes."""

    def __init__(self, budget: int, on_change: Callable[[int], None] | None = None) -> None:
        self._segments: deque[_Segment] = deque()
        self.first = 0  # absolute index of the oldest line kept
        self.end = 0  # absolute index one past the newest line
        self.out_end = 0  # stdout lines in all (kept or dropped)
        self.nbytes = 0
        self.budget = budget
        self._on_change = on_change
        # The oldest absolute index an attached reader still needs (nothing at or after it is
        # dropped); None when no reader is attached.
        self.floor: Callable[[], int | None] = lambda: None

    def _account(self, delta: int) -> None:
        self.nbytes += delta
        if self._on_change is not None:
            self._on_change(delta)

    def add(self, stream: Stream, block: bytes, timestamp: int, continued: bool = False) -> None:
        """Append the lines of ``block`` (each ending with ``\\n``).

        ``continued``: its last line is a piece of a longer line, continued by the next line
        of ``stream``.
        """
        n = block.count(b"\n")
        if n == 0:
            return
        seg = self._segments[-1] if self._segments else None
        if seg is None or isinstance(seg.data, bytes):
            seg = _Segment(self.end, self.out_end)
            self._segments.append(seg)
            self._account(SEGMENT_COST)
        assert isinstance(seg.data, bytearray)
        seg.data += block
        last = seg.runs[-1] if seg.runs else None
        if last is not None and last[1] == stream and last[2] == timestamp and not last[3]:
            seg.runs[-1] = (last[0] + n, stream, timestamp, continued)
            cost = len(block)
        else:
            seg.runs.append((n, stream, timestamp, continued))
            cost = len(block) + RUN_COST
        seg.count += n
        self.end += n
        if stream == "stdout":
            seg.out_count += n
            self.out_end += n
        if len(seg.data) >= _SEGMENT_BYTES:
            seg.data = bytes(seg.data)  # sealed: exactly its size
        self._account(cost)
        if self.nbytes > self.budget:
            self.trim(self.budget * 3 // 4)

    @property
    def over_budget(self) -> bool:
        return self.nbytes > self.budget

    def trim(self, target: int) -> None:
        """Drop the oldest segments until the log costs at most ``target`` bytes (keeps the newest).

        A segment holding a line an attached reader has not read yet is kept. With no reader
        attached, the newest segment is kept (for readers to come); once every attached
        reader has read it, it goes too.
        """
        floor = self.floor()
        while self.nbytes > target and self._segments:
            seg = self._segments[0]
            if floor is None:
                if len(self._segments) == 1:
                    break
            elif seg.start + seg.count > floor:
                break
            self._segments.popleft()
            self.first = seg.start + seg.count
            self._account(-(len(seg.data) + RUN_COST * len(seg.runs) + SEGMENT_COST))

    def clear(self) -> None:
        while self._segments:
            seg = self._segments.popleft()
            self.first = seg.start + seg.count
            self._account(-(len(seg.data) + RUN_COST * len(seg.runs) + SEGMENT_COST))
        self.first = self.end

    def locate(self, stream: StreamName, position: int) -> int:
        """The absolute index of the line at ``position`` of ``stream`` (the end when not yet written).

        A position already dropped gives the oldest index kept (the reader then sees a gap).
        """
        if stream == "output":
            return max(position, self.first)
        for seg in list(self._segments):
            out_end = seg.out_start + seg.out_count
            err_start = seg.start - seg.out_start
            err_end = err_start + seg.count - seg.out_count
            if (out_end if stream == "stdout" else err_end) <= position:
                continue
            i, k = seg.start, seg.out_start if stream == "stdout" else err_start
            if k >= position:
                return seg.start  # dropped, or the segment's first line of the stream
            for n, s, _, _ in seg.runs:
                if s == stream:
                    if k + n > position:
                        return i + (position - k)
                    k += n
                i += n
        return self.end

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
            for lines, stream, ts, cont, index, pos in seg.lines(start, stop):
                yield Batch(index, stream, ts, lines, pos, cont)
