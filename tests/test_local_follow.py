"""The follow endpoints (Server-Sent Events) of the local sandbox, read with httpx-sse.

Replay of captured lines, live lines as the process prints them, ``event: eof`` once it has
exited and its output is drained, the ``stream`` field only on ``output/follow``, and 404.
"""

from __future__ import annotations

import io
import json
import os
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from tensorlake_api_client.api.sandbox_processes import sandbox_process_close_stdin, sandbox_process_stdin
from tensorlake_api_client.types import File
from tensorlake_sandbox import SandboxClient
from tensorlake_sandbox.local import LocalSandbox
from tensorlake_sandbox.local._output import SEGMENT_COST, OutputLog

from .conftest import StartFn


@pytest.fixture
def raw(local_sandbox: LocalSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=local_sandbox.base_url,
        headers={"Authorization": f"Bearer {local_sandbox.token}"},
        timeout=httpx.Timeout(20),
    ) as client:
        yield client


def read_events(client: httpx.Client, path: str) -> list[tuple[str, dict[str, Any]]]:
    with connect_sse(client, "GET", path) as source:
        assert source.response.status_code == 200
        assert source.response.headers["content-type"].startswith("text/event-stream")
        return [(event.event, json.loads(event.data)) for event in source.iter_sse()]


def test_follow_replays_then_streams_live_then_eof(
    raw: httpx.Client, local_client: SandboxClient, start_process: StartFn
) -> None:
    info = start_process("cat", stdin="pipe")
    sandbox_process_stdin.sync_detailed(
        info.pid, client=local_client, body=File(payload=io.BytesIO(b"early\n"))
    )
    # "early" is captured before anyone follows: it must be replayed.
    deadline = time.monotonic() + 20
    while raw.get(f"/api/v1/processes/{info.pid}/stdout").json()["lines"] != ["early"]:
        assert time.monotonic() < deadline, "cat did not echo its input"
        time.sleep(0.02)
    before = time.time() * 1000
    events: list[tuple[str, dict[str, Any]]] = []
    with connect_sse(raw, "GET", f"/api/v1/processes/{info.pid}/stdout/follow") as source:
        iterator = source.iter_sse()
        first = next(iterator)
        events.append((first.event, json.loads(first.data)))
        # Live: written only after the stream is open.
        sandbox_process_stdin.sync_detailed(
            info.pid, client=local_client, body=File(payload=io.BytesIO(b"late\n"))
        )
        second = next(iterator)
        events.append((second.event, json.loads(second.data)))
        sandbox_process_close_stdin.sync_detailed(info.pid, client=local_client)
        events.extend((event.event, json.loads(event.data)) for event in iterator)
    assert [(name, data.get("line")) for name, data in events] == [
        ("output", "early"),
        ("output", "late"),
        ("eof", None),
    ]
    assert events[-1][1] == {}
    assert "stream" not in events[0][1]
    assert events[0][1]["timestamp"] <= before <= events[1][1]["timestamp"] <= time.time() * 1000


def test_output_follow_tags_streams_and_stderr_follow(raw: httpx.Client, start_process: StartFn) -> None:
    info = start_process("sh", "-c", "echo one; sleep 0.05; echo two >&2; sleep 0.05; echo three")
    combined = read_events(raw, f"/api/v1/processes/{info.pid}/output/follow")
    assert [(d.get("stream"), d.get("line")) for _, d in combined] == [
        ("stdout", "one"),
        ("stderr", "two"),
        ("stdout", "three"),
        (None, None),
    ]
    assert combined[-1] == ("eof", {})
    # After exit: a follow replays everything and ends at once.
    errors = read_events(raw, f"/api/v1/processes/{info.pid}/stderr/follow")
    assert errors == [("output", {"line": "two", "timestamp": combined[1][1]["timestamp"]}), ("eof", {})]
    out = read_events(raw, f"/api/v1/processes/{info.pid}/stdout/follow")
    assert [d.get("line") for _, d in out] == ["one", "three", None]


def test_follow_with_discarded_output_ends_with_eof(raw: httpx.Client, start_process: StartFn) -> None:
    info = start_process("sh", "-c", "echo hidden; sleep 0.2", stdout="discard")
    assert read_events(raw, f"/api/v1/processes/{info.pid}/stdout/follow") == [("eof", {})]


def test_follow_unknown_pid_is_404_json(raw: httpx.Client) -> None:
    for stream in ("stdout", "stderr", "output"):
        response = raw.get(f"/api/v1/processes/2000000000/{stream}/follow")
        assert response.status_code == 404
        assert response.json()["code"] == "NOT_FOUND"


def test_output_log_keeps_a_byte_budget_and_absolute_indexes() -> None:
    log = OutputLog(budget=4 * SEGMENT_COST + 64 * 1024)
    block = b"".join(b"line-%05d\n" % n for n in range(20_000))  # 200 kB: four segments' worth
    for i in range(0, len(block), 10 * 100):
        log.add("stdout", block[i : i + 10 * 100], i)
    assert log.end == 20_000  # absolute: one past the newest line
    assert log.nbytes <= log.budget and log.first > 0
    kept = [line for b in log.batches(0) for line in b.lines]
    # A follower that fell behind resumes at the oldest line kept; nothing in between is lost.
    assert kept == [f"line-{n:05d}" for n in range(log.first, 20_000)]
    tail = list(log.batches(19_999))
    assert [b.lines for b in tail] == [["line-19999"]] and tail[0].index == 19_999
    assert list(log.batches(20_000)) == []


def test_output_log_counts_what_its_lines_really_cost() -> None:
    def measure(fill: Callable[[OutputLog], None]) -> tuple[int, OutputLog]:
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            log = OutputLog(budget=1 << 30)
            fill(log)
            return tracemalloc.get_traced_memory()[0] - before, log
        finally:
            tracemalloc.stop()

    def floods(log: OutputLog) -> None:  # 1.2 M lines, mostly empty, in big runs
        for n in range(300):
            log.add("stdout" if n % 3 else "stderr", b"\n" * 4000, n)
            log.add("stdout", b"x" * 99 + b"\n", n)

    def trickles(log: OutputLog) -> None:  # one line per run, streams alternating
        for n in range(100_000):
            log.add("stdout" if n % 2 else "stderr", b"line\n", n)

    for fill, lines in ((floods, 300 * 4001), (trickles, 100_000)):
        used, log = measure(fill)
        assert log.end == lines
        # What the log says it costs is what it costs (within 10 %, plus one open segment).
        assert abs(used - log.nbytes) <= log.nbytes / 10 + 64 * 1024, (fill.__name__, used, log.nbytes)


def test_output_log_tags_streams_and_decodes_invalid_utf8_per_line() -> None:
    log = OutputLog(budget=1 << 20)
    log.add("stdout", b"a\n\xff\xfe\n", 1)
    log.add("stderr", b"\xe2\x82\n", 2)  # a truncated sequence stays in its line
    log.add("stdout", b"\xac\n", 3)
    got = [(b.stream, b.timestamp, b.lines) for b in log.batches(0)]
    assert got == [("stdout", 1, ["a", "\ufffd\ufffd"]), ("stderr", 2, ["\ufffd"]), ("stdout", 3, ["\ufffd"])]


def test_stopping_with_an_open_follow_stream_is_prompt_and_kills_processes() -> None:
    sandbox = LocalSandbox().start()
    headers = {"Authorization": f"Bearer {sandbox.token}"}
    with httpx.Client(base_url=sandbox.base_url, headers=headers, timeout=20) as client:
        pid = client.post("/api/v1/processes", json={"command": "sleep", "args": ["60"]}).json()["pid"]
        with client.stream("GET", f"/api/v1/processes/{pid}/output/follow") as follow:
            assert follow.status_code == 200
            began = time.monotonic()
            sandbox.stop()
            assert time.monotonic() - began < 10
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed, and reaped by the server
    with pytest.raises(RuntimeError):
        _ = sandbox.base_url
