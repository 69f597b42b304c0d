"""Output you can trust (issue 21): nothing the caller asked for is lost or altered silently.

A local sandbox with small output budgets (per process, in all) and a small line limit, so
that the floods of the issue (``seq 3000000``, a 40 MiB ``tee``, a 3,000,000-character line)
reproduce with a few megabytes: a lagging follow or run stream holds the process back instead
of losing lines; follow events carry their position (SSE ``id``); a reconnect with
``Last-Event-ID`` resumes exactly; lines dropped before anyone followed are an explicit gap;
long lines come back whole.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from tensorlake_sandbox import OutputLine, OutputLostError, SandboxClient, run, sandbox_client, start
from tensorlake_sandbox._sync._process import run_streaming
from tensorlake_sandbox.local import create_app
from tensorlake_sandbox.local._runner import ServerThread, bind, make_config

BUDGET = 128 * 1024  # per process
TOTAL = 512 * 1024
MAX_LINE = 16 * 1024


@pytest.fixture(scope="module")
def small() -> Iterator[tuple[str, SandboxClient]]:
    app = create_app(
        token="t",
        process_output_budget=BUDGET,
        total_output_budget=TOTAL,
        max_line=MAX_LINE,
        attach_grace=0.5,
    )
    sock = bind("127.0.0.1", 0)
    server = ServerThread(make_config(app), sock, name="small-budget-sandbox")
    server.start()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    client = sandbox_client(base_url=url, api_key="t")
    try:
        yield url, client
    finally:
        client.get_httpx_client().close()
        server.stop()


@pytest.fixture
def raw(small: tuple[str, SandboxClient]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=small[0], headers={"Authorization": "Bearer t"}, timeout=30) as c:
        yield c


def lines(n: int) -> str:
    return "".join(f"{i}\n" for i in range(1, n + 1))


def events(client: httpx.Client, path: str, **headers: str) -> list[tuple[str, str, dict[str, Any]]]:
    with connect_sse(client, "GET", path, headers=headers) as source:
        assert source.response.status_code == 200
        return [(e.event, e.id, json.loads(e.data)) for e in source.iter_sse()]


def wait_exited(client: httpx.Client, pid: int) -> None:
    deadline = time.monotonic() + 20
    while client.get(f"/api/v1/processes/{pid}").json()["status"] == "running":
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_run_seq_far_beyond_the_output_budget_arrives_whole(small: tuple[str, SandboxClient]) -> None:
    # 200,000 lines are 1.3 MB: ten times the per-process budget, twice the server's total.
    result = run(small[1], ["seq", "200000"])
    assert result.returncode == 0
    assert result.stdout == lines(200000)


def test_run_cat_with_big_input_loses_no_block(small: tuple[str, SandboxClient]) -> None:
    data = "".join(f"line {i:07d} " + "x" * 40 + "\n" for i in range(40000))  # 2 MB
    result = run(small[1], ["cat"], input=data)
    assert result.returncode == 0
    assert result.stdout == data


def test_run_tee_to_stderr_keeps_both_streams_whole(small: tuple[str, SandboxClient]) -> None:
    data = "".join(f"{i:08d}\n" for i in range(150000))  # 1.35 MB on each stream
    result = run(small[1], ["sh", "-c", "tee /dev/stderr"], input=data)
    assert result.returncode == 0
    assert result.stdout == data
    assert result.stderr == data


def test_iterating_stdout_of_a_flood_misses_nothing(small: tuple[str, SandboxClient]) -> None:
    with start(small[1], ["seq", "100000"], stdin=False) as p:
        got = [next(p.stdout)]
        time.sleep(1.0)  # the reader pauses (the scenario, not a synchronisation)
        got += list(p.stdout)
    assert got == [f"{i}\n" for i in range(1, 100001)]


def test_a_run_whose_reader_pauses_misses_nothing(small: tuple[str, SandboxClient]) -> None:
    got: list[str] = []

    def on_line(item: OutputLine) -> None:
        if not got:
            time.sleep(1.0)  # the reader pauses: seq writes ten budgets' worth meanwhile
        got.append(item.line)

    assert run_streaming(small[1], ["seq", "200000"], on_line) == 0
    assert got == [str(i) for i in range(1, 200001)]


def test_a_line_longer_than_the_limit_comes_back_whole(small: tuple[str, SandboxClient]) -> None:
    code = "import sys; sys.stdout.write('a' * 100000 + '\\n' + 'é' * 30000)"  # 2-byte characters
    result = run(small[1], ["python3", "-c", code])
    assert result.stdout == "a" * 100000 + "\n" + "é" * 30000 + "\n"
    with start(small[1], ["python3", "-c", code], stdin=False) as p:
        assert list(p.stdout) == ["a" * 100000 + "\n", "é" * 30000 + "\n"]


def test_long_line_pieces_are_marked_continued_for_other_clients(
    small: tuple[str, SandboxClient], raw: httpx.Client
) -> None:
    pid = raw.post(
        "/api/v1/processes", json={"command": "python3", "args": ["-c", "print('b' * 200000)"]}
    ).json()["pid"]
    got = events(raw, f"/api/v1/processes/{pid}/stdout/follow")
    output = [(i, d) for name, i, d in got if name == "output"]
    # Several pipe reads (a pipe holds 64 KiB): pieces while no newline has come.
    marks = [d.get("continued", False) for _, d in output]
    assert len(marks) > 1 and all(marks[:-1]) and marks[-1] is False
    assert "".join(d["line"] for _, d in output) == "b" * 200000
    assert [i for i, _ in output] == [str(k) for k in range(len(output))]


def test_follow_events_carry_positions_and_last_event_id_resumes_exactly(raw: httpx.Client) -> None:
    pid = raw.post(
        "/api/v1/processes", json={"command": "sh", "args": ["-c", "seq 5; seq 6 9 >&2; seq 10 12"]}
    ).json()["pid"]
    wait_exited(raw, pid)
    out = events(raw, f"/api/v1/processes/{pid}/stdout/follow")
    assert [(i, d["line"]) for n, i, d in out if n == "output"] == [
        (str(k), str(v)) for k, v in enumerate([1, 2, 3, 4, 5, 10, 11, 12])
    ]
    err = events(raw, f"/api/v1/processes/{pid}/stderr/follow")
    assert [(i, d["line"]) for n, i, d in err if n == "output"] == [
        ("0", "6"),
        ("1", "7"),
        ("2", "8"),
        ("3", "9"),
    ]
    # The two pipes are read apart, so their order in the combined output may vary.
    full = [
        (i, d["line"]) for n, i, d in events(raw, f"/api/v1/processes/{pid}/output/follow") if n == "output"
    ]
    assert [i for i, _ in full] == [str(k) for k in range(12)]
    both = events(raw, f"/api/v1/processes/{pid}/output/follow", **{"Last-Event-ID": "7"})
    assert [(i, d["line"]) for n, i, d in both if n == "output"] == full[8:]
    resumed = events(raw, f"/api/v1/processes/{pid}/stdout/follow", **{"Last-Event-ID": "4"})
    assert [d["line"] for n, _, d in resumed if n == "output"] == ["10", "11", "12"]
    assert (
        raw.get(f"/api/v1/processes/{pid}/stdout/follow", headers={"Last-Event-ID": "8"}).status_code == 400
    )


def test_lines_dropped_before_anyone_followed_are_an_explicit_gap(
    small: tuple[str, SandboxClient], raw: httpx.Client
) -> None:
    pid = raw.post("/api/v1/processes", json={"command": "seq", "args": ["100000"]}).json()["pid"]
    wait_exited(raw, pid)  # nobody followed: the oldest lines were dropped (budget)
    got = events(raw, f"/api/v1/processes/{pid}/stdout/follow")
    assert got[0][0] == "gap"
    first = next(d for n, _, d in got if n == "output")
    assert got[0][2] == {"missing": int(first["line"]) - 1, "from": 0, "to": int(first["line"]) - 1}
    from tensorlake_sandbox import RemoteProcess

    p = RemoteProcess(small[1], pid, ["seq"], stdin=None)
    with pytest.raises(OutputLostError) as caught:
        list(p.stdout)
    assert caught.value.missing == got[0][2]["missing"]
    assert caught.value.received == 0
    assert f"{caught.value.missing} lines" in str(caught.value)


def test_cli_logs_follow_and_exec_say_how_many_lines_are_missing(
    small: tuple[str, SandboxClient], raw: httpx.Client
) -> None:
    cli = str(Path(sys.executable).parent / "tensorlake-sandbox")
    env = {**os.environ, "TENSORLAKE_API_KEY": "t"}
    pid = raw.post("/api/v1/processes", json={"command": "seq", "args": ["100000"]}).json()["pid"]
    wait_exited(raw, pid)  # nobody followed: the oldest lines were dropped
    logs = subprocess.run(
        [cli, "logs", small[0], str(pid), "-f"], env=env, capture_output=True, text=True, timeout=60
    )
    assert logs.returncode != 0
    assert "lines were lost" in logs.stderr and logs.stderr.count("\n") == 1
    # exec and run of a flood (ten budgets' worth) print every line.
    for command in ("exec", "run"):
        done = subprocess.run(
            [cli, command, small[0], "--", "seq", "200000"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == lines(200000)
