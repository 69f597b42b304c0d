"""Any stdin source, as bounded chunks that are ready to send as soon as bytes are available.

`open_source` (sync) and `aopen_source` (async) check what they are given (raising a
`TypeError` that lists what is accepted, before anything is read) and return a `Source`
whose ``take(n)`` / ``atake(n)`` returns what is available right now, up to ``n`` bytes,
waiting only while nothing at all is available. So many small pieces become few chunks
(they pile up while a request is in flight) and yet no byte is ever held back while the
source is blocked.

* bytes, bytearray, memoryview, str (UTF-8): sliced, with no reader.
* a binary file object, or an iterable of bytes-like pieces: a reader thread pulls from it
  (``read1``, or one ``read`` call, so a pipe gives what it has) into a buffer of at most
  ``capacity`` bytes of our own copies. The writers' capacity is two chunks, and a file is
  read at most half the capacity at a time: a chunk is then one read, sent without a copy.
* an async iterable (async path only): a reader task does the same.

Memory is bounded by ``capacity`` plus the chunk being taken, whatever the source's size.
A source's exception is raised by ``take`` once the bytes read before it were taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
import time
import types
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any

__all__ = ["ACCEPTED", "AsyncSource", "Source", "aopen_source", "open_source"]

ACCEPTED = (
    "bytes, bytearray, memoryview (or another bytes-like object), str (sent as UTF-8), a "
    "binary file object (opened 'rb', or sys.stdin.buffer), or an iterable of bytes-like pieces"
)
_ACCEPTED_ASYNC = f"{ACCEPTED}, or an async iterable of bytes-like pieces"

_BYTES_LIKE = (bytes, bytearray, memoryview)


def _view(obj: bytes | bytearray | memoryview) -> memoryview:
    view = memoryview(obj)
    if view.format != "B" or view.ndim != 1:
        try:
            view = view.cast("B")
        except TypeError:
            raise TypeError("a memoryview to write must be C-contiguous") from None
    return view


def _describe(obj: object) -> str:
    return type(obj).__name__


def _text_file_error(obj: object) -> TypeError:
    return TypeError(
        f"cannot write a text-mode file ({_describe(obj)}) to stdin: pass a binary file "
        "(open(path, 'rb'), or sys.stdin.buffer instead of sys.stdin)"
    )


def _is_text_file(obj: object) -> bool:
    if isinstance(obj, io.TextIOBase):
        return True
    mode = getattr(obj, "mode", None)
    return isinstance(mode, str) and "b" not in mode and ("r" in mode or "+" in mode)


def _piece_view(piece: object, where: str) -> tuple[memoryview, bool]:
    """A piece from an iterable as (bytes view, must copy because the owner may change it)."""
    if isinstance(piece, bytes):
        return memoryview(piece), False
    if isinstance(piece, (bytearray, memoryview)):
        view = _view(piece)
        return view, not view.readonly
    if isinstance(piece, str):
        raise TypeError(f"{where} yielded a str; yield bytes (encode text with .encode()), or pass one str")
    raise TypeError(f"{where} yielded {_describe(piece)}; its pieces must be bytes, bytearray or memoryview")


class _InMemory:
    """What the in-memory sources share: nothing to wait for, nothing read ahead to rewind."""

    def take(self, n: int) -> bytes:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    async def atake(self, n: int) -> bytes:
        return self.take(n)

    async def aclose(self) -> None:
        self.close()

    def rewind(self, delivered: int) -> None:
        pass

    async def arewind(self, delivered: int) -> None:
        pass


class _SliceSource(_InMemory):
    """A bytes-like value in memory, sliced; nothing to wait for."""

    def __init__(self, data: bytes | bytearray | memoryview):
        self._whole = data if isinstance(data, bytes) else None
        self._view = _view(data)
        self._pos = 0

    def take(self, n: int) -> bytes:
        if self._pos == 0 and self._whole is not None and len(self._whole) <= n:
            self._pos = len(self._whole)
            return self._whole
        chunk = bytes(self._view[self._pos : self._pos + n])
        self._pos += len(chunk)
        return chunk

    def close(self) -> None:
        self._view.release()


class _StrSource(_InMemory):
    """A str, encoded to UTF-8 a slice at a time so that memory stays bounded."""

    def __init__(self, text: str):
        # Fail before anything is sent on text that has no UTF-8 form (lone surrogates).
        step = 1 << 20
        for i in range(0, len(text), step):
            text[i : i + step].encode("utf-8")
        self._text = text
        self._pos = 0
        self._pending = b""

    def take(self, n: int) -> bytes:
        if not self._pending and self._pos < len(self._text):
            # n characters encode to n..4n bytes; what does not fit waits for the next take.
            self._pending = self._text[self._pos : self._pos + n].encode("utf-8")
            self._pos += n
        chunk, self._pending = self._pending[:n], self._pending[n:]
        return chunk

    def close(self) -> None:
        self._text = ""
        self._pending = b""


class _Buffer:
    """Parts read ahead by a producer, taken by the consumer; the shared state of a reader."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.parts: deque[bytes | memoryview] = deque()
        self.size = 0
        self.eof = False
        self.error: BaseException | None = None
        self.stopped = False

    def ready(self) -> bool:
        return bool(self.parts) or self.eof or self.error is not None

    def pop(self, n: int) -> bytes:
        """Up to ``n`` buffered bytes, b"" at the end; raises the source's error once drained."""
        if not self.parts:
            if self.error is not None:
                raise self.error
            return b""
        out: list[bytes | memoryview] = []
        got = 0
        while self.parts and got < n:
            part = self.parts[0]
            need = n - got
            if len(part) <= need:
                out.append(self.parts.popleft())
                got += len(part)
            else:
                view = part if isinstance(part, memoryview) else memoryview(part)
                out.append(view[:need])
                self.parts[0] = view[need:]
                got += need
        self.size -= got
        if len(out) == 1 and isinstance(out[0], bytes):
            return out[0]
        return b"".join(out)

    def add(self, view: memoryview, copy: bool) -> None:
        if copy:
            part: bytes | memoryview = bytes(view)
        elif type(view.obj) is bytes and len(view) == len(view.obj):
            part = view.obj  # whole bytes: `pop` can hand it on as it is, without a join
        else:
            part = view
        self.parts.append(part)
        self.size += len(view)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _ThreadSource:
    """A blocking source (file or iterable) read by a daemon thread into a bounded buffer.

    Usable from sync code (`take`) and from an event loop (`atake`, which never blocks
    the loop). When the consumer stops early, a reader waiting for room exits at once and
    a generator source is closed in the reader; a reader blocked inside the source (a pipe
    with nothing to read) exits as soon as the source returns.
    """

    def __init__(
        self,
        pull: Callable[[_ThreadSource], None],
        capacity: int,
        close_iter: Any = None,
        seekable_file: tuple[Any, int] | None = None,
    ):
        self._seekable_file = seekable_file
        self._buf = _Buffer(capacity)
        self._lock = threading.Lock()
        self._has_data = threading.Condition(self._lock)
        self._has_room = threading.Condition(self._lock)
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._pull = pull
        self._close_iter = close_iter
        self.in_source = False
        self._thread = threading.Thread(target=self._run, name="tensorlake-stdin-reader", daemon=True)
        self._thread.start()

    # -- producer side (reader thread) --

    def wait_room(self, *, reading: bool = False) -> int:
        """Bytes of room in the buffer, waiting while it is full; 0 once the consumer stopped.

        With ``reading``, the reader is marked as being inside the source from now on.
        """
        with self._lock:
            while not self._buf.stopped and self._buf.size >= self._buf.capacity:
                self._has_room.wait()
            if self._buf.stopped:
                return 0
            self.in_source = reading
            return self._buf.capacity - self._buf.size

    def enter_source(self) -> bool:
        """Mark the reader as inside the source; False once the consumer stopped."""
        with self._lock:
            self.in_source = not self._buf.stopped
            return self.in_source

    def leave_source(self) -> None:
        with self._lock:
            self.in_source = False

    def put(self, view: memoryview, copy: bool) -> bool:
        """Add all of ``view`` (in parts that fit); False once the consumer stopped."""
        while len(view):
            room = self.wait_room()
            if room == 0:
                return False
            part, view = view[:room], view[room:]
            with self._lock:
                self._buf.add(part, copy)
                self._notify()
        return True

    def _notify(self) -> None:
        self._has_data.notify()
        for loop, fut in self._waiters:
            # RuntimeError: that event loop is closed; nobody waits there any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_wake, fut)
        self._waiters.clear()

    def _run(self) -> None:
        error: BaseException | None = None
        try:
            self._pull(self)
        except BaseException as exc:
            error = exc
        finally:
            if self._close_iter is not None:
                try:
                    self._close_iter()
                except BaseException as exc:
                    error = error or exc
            with self._lock:
                self._buf.eof = True
                self._buf.error = error
                self._notify()

    # -- consumer side --

    def take(self, n: int) -> bytes:
        with self._lock:
            while not self._buf.ready():
                self._has_data.wait()
            chunk = self._buf.pop(n)
            self._has_room.notify()
            return chunk

    async def atake(self, n: int) -> bytes:
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                if self._buf.ready():
                    chunk = self._buf.pop(n)
                    self._has_room.notify()
                    return chunk
                fut: asyncio.Future[None] = loop.create_future()
                self._waiters.append((loop, fut))
            await fut

    def _stop(self) -> bool:
        """Tell the reader to stop and drop what it buffered; whether it is inside the source."""
        with self._lock:
            self._buf.stopped = True
            self._buf.parts.clear()
            self._buf.size = 0
            self._has_room.notify_all()
            return self.in_source

    def close(self) -> None:
        if not self._stop():
            # Waiting for room or already done: it exits (closing a generator) right away.
            self._thread.join(timeout=5.0)

    async def aclose(self) -> None:
        self._stop()

    def rewind(self, delivered: int) -> None:
        if self._seekable_file is None:
            return
        self.close()
        # A seekable file is a regular file or in memory: its reads never block for long.
        self._thread.join(timeout=5.0)
        if self._thread.is_alive():
            return
        f, start = self._seekable_file
        with contextlib.suppress(OSError, ValueError):
            f.seek(start + delivered)

    async def arewind(self, delivered: int) -> None:
        if self._seekable_file is not None:
            await asyncio.to_thread(self.rewind, delivered)


def _pull_file(read: Callable[[int], Any], owner: object, step: int) -> Callable[[_ThreadSource], None]:
    """Read ``f`` at most ``step`` bytes at a time: a chunk that ``take`` asks for is one
    piece read, handed on as it is (joining pieces, or slicing a larger one, copies it)."""

    def pull(src: _ThreadSource) -> None:
        while True:
            room = src.wait_room(reading=True)
            if room == 0:
                return
            try:
                piece = read(min(room, step))
            finally:
                src.leave_source()
            if piece is None:  # a non-blocking file with nothing to read yet
                time.sleep(0.005)
                continue
            if isinstance(piece, str):
                raise _text_file_error(owner)
            if not isinstance(piece, _BYTES_LIKE):
                raise TypeError(f"{_describe(owner)}.read() returned {_describe(piece)}, not bytes")
            if not piece:
                return
            view, copy = _piece_view(piece, "the file")
            if not src.put(view, copy):
                return

    return pull


def _pull_iter(it: Iterator[Any]) -> Callable[[_ThreadSource], None]:
    def pull(src: _ThreadSource) -> None:
        while True:
            if not src.enter_source():
                return
            try:
                piece = next(it, _END)
            finally:
                src.leave_source()
            if piece is _END:
                return
            view, copy = _piece_view(piece, "the iterable")
            # The producer is suspended until the whole piece is in (copied if mutable).
            if not src.put(view, copy):
                return

    return pull


_END = object()


def _file_reader(f: Any) -> Callable[[int], Any]:
    read1 = getattr(f, "read1", None)
    return read1 if callable(read1) else f.read  # type: ignore[no-any-return]


def _position(f: Any) -> int | None:
    """The read position of a seekable file, else None (a pipe, a socket, a tty)."""
    try:
        if f.seekable():
            return int(f.tell())
    except (AttributeError, OSError, ValueError):
        pass
    return None


def _check_file(f: Any) -> None:
    if _is_text_file(f):
        raise _text_file_error(f)
    if getattr(f, "closed", False) is True:
        raise ValueError("cannot write from a closed file")


# What `open_source` returns: each takes (``take(n)``: up to ``n`` bytes available now, waiting
# while there are none; b"" at the end), stops (``close``, idempotent) and, after a failure,
# ``rewind(delivered)``s (a seekable file left just after the delivered bytes).
Source = _SliceSource | _StrSource | _ThreadSource


def open_source(data: object, capacity: int) -> Source:
    """A `Source` for ``data``; TypeError (saying what is accepted) for anything else."""
    return _open_sync_kind(data, capacity)


def _open_sync_kind(data: object, capacity: int) -> _SliceSource | _StrSource | _ThreadSource:
    if isinstance(data, _BYTES_LIKE):
        return _SliceSource(data)
    if isinstance(data, str):
        return _StrSource(data)
    if not hasattr(data, "read") and not isinstance(data, Iterator):
        # Any other object with the buffer protocol (array.array, a NumPy array, ...).
        try:
            return _SliceSource(memoryview(data))  # type: ignore[arg-type]
        except TypeError:
            pass
    if hasattr(data, "read"):
        _check_file(data)
        start = _position(data)
        seekable = None if start is None else (data, start)
        pull = _pull_file(_file_reader(data), data, max(1, capacity // 2))
        return _ThreadSource(pull, capacity, seekable_file=seekable)
    if isinstance(data, AsyncIterable):
        raise TypeError(f"write_stdin cannot take an async iterable ({_describe(data)}); use awrite_stdin")
    if isinstance(data, Iterable):
        it = iter(data)
        close = it.close if isinstance(it, types.GeneratorType) else None
        return _ThreadSource(_pull_iter(it), capacity, close)
    raise TypeError(f"cannot write {_describe(data)} to stdin; pass {ACCEPTED}")


class _TaskSource:
    """An async iterable read by a task into a bounded buffer (single event loop, no locks)."""

    def __init__(self, ait: AsyncIterator[Any], capacity: int):
        self._ait = ait
        self._buf = _Buffer(capacity)
        self._has_data = asyncio.Event()
        self._has_room = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="tensorlake-stdin-reader")

    async def _put(self, view: memoryview, copy: bool) -> bool:
        buf = self._buf
        while len(view):
            while not buf.stopped and buf.size >= buf.capacity:
                self._has_room.clear()
                await self._has_room.wait()
            if buf.stopped:
                return False
            room = buf.capacity - buf.size
            part, view = view[:room], view[room:]
            buf.add(part, copy)
            self._has_data.set()
        return True

    async def _run(self) -> None:
        error: BaseException | None = None
        # Once anext() raised, an async generator is finished and needs no aclose().
        finished = False
        try:
            while True:
                try:
                    piece = await anext(self._ait)
                except BaseException:
                    finished = True
                    raise
                view, copy = _piece_view(piece, "the async iterable")
                if not await self._put(view, copy):
                    return
        except StopAsyncIteration:
            pass
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            error = exc
        finally:
            aclose = getattr(self._ait, "aclose", None)
            if not finished and callable(aclose):
                try:
                    await aclose()
                except Exception as exc:
                    error = error or exc
            self._buf.eof = True
            self._buf.error = error
            self._has_data.set()

    async def atake(self, n: int) -> bytes:
        while not self._buf.ready():
            self._has_data.clear()
            await self._has_data.wait()
        chunk = self._buf.pop(n)
        self._has_room.set()
        return chunk

    async def aclose(self) -> None:
        self._buf.stopped = True
        self._buf.parts.clear()
        self._buf.size = 0
        self._has_room.set()
        if not self._task.done():
            self._task.cancel()
        # asyncio.wait never raises the reader's outcome, and lets our own cancellation through.
        await asyncio.wait([self._task])

    async def arewind(self, delivered: int) -> None:
        pass


# What `aopen_source` returns: the same, awaited (``atake``, ``aclose``, ``arewind``).
AsyncSource = _SliceSource | _StrSource | _ThreadSource | _TaskSource


def aopen_source(data: object, capacity: int) -> AsyncSource:
    """An `AsyncSource` for ``data`` (call it in the event loop); TypeError for anything else."""
    if isinstance(data, AsyncIterable):
        return _TaskSource(aiter(data), capacity)
    if isinstance(data, (*_BYTES_LIKE, str)) or hasattr(data, "read") or isinstance(data, Iterable):
        return _open_sync_kind(data, capacity)
    raise TypeError(f"cannot write {_describe(data)} to stdin; pass {_ACCEPTED_ASYNC}")
