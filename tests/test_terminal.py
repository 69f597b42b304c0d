"""Terminals against the local sandbox: real pseudo-terminals, real websockets, the library sync and async."""

from __future__ import annotations

import asyncio
import hashlib
import queue
import random
import struct
import threading
import time
import tracemalloc

import httpx
import pytest
from httpx_ws import WebSocketDisconnect, connect_ws

from tensorlake_api_client.api.sandbox_pty import sandbox_pty_get, sandbox_pty_list
from tensorlake_sandbox import (
    AuthenticationError,
    TerminalClosedError,
    TerminalNotFoundError,
    TooManyTerminalsError,
)
from tensorlake_sandbox._async._terminal import aattach_terminal, aopen_terminal
from tensorlake_sandbox._sync._terminal import attach_terminal, open_terminal
from tensorlake_sandbox.local import LocalSandbox
from tensorlake_sandbox.local._pty_session import PRE_READY_LIMIT, QUEUE_CHUNKS, _History
from tensorlake_sandbox.local._pty_table import MAX_SESSIONS

SH_ANSWER = "echo $((6*7)); exit 5\n"


def _drain(term, timeout: float = 20.0) -> bytes:
    out = bytearray()
    deadline = time.monotonic() + timeout
    while chunk := term.read(timeout=max(0.1, deadline - time.monotonic())):
        out += chunk
    return bytes(out)


def _read_until(term, needle: bytes, timeout: float = 20.0) -> bytes:
    out = bytearray()
    deadline = time.monotonic() + timeout
    while needle not in out:
        chunk = term.read(timeout=max(0.1, deadline - time.monotonic()))
        assert chunk, f"terminal ended before {needle!r}; the last output: {bytes(out[-200:])!r}"
        out += chunk
    return bytes(out)


def test_sh_answers_and_exits_with_its_code(local_client):
    with open_terminal(local_client, "sh") as term:
        term.write(SH_ANSWER)
        output = _drain(term)
        assert term.wait(timeout=10) == 5
    assert b"42" in output
    assert term.returncode == 5


def test_async_sh_answers_and_exits_with_its_code(local_sandbox):
    async def main() -> tuple[bytes, int]:
        client = local_sandbox.client()
        try:
            async with await aopen_terminal(client, "sh") as term:
                await term.write(SH_ANSWER)
                output = b"".join([chunk async for chunk in term])
                return output, await term.wait(timeout=10)
        finally:
            await client.aclose()

    output, code = asyncio.run(main())
    assert b"42" in output
    assert code == 5


def test_output_callback_gets_every_chunk(local_client):
    got: list[bytes] = []
    with open_terminal(
        local_client, "sh", ["-c", "echo one; echo two; exit 4"], on_output=got.append
    ) as term:
        assert term.wait(timeout=20) == 4
        with pytest.raises(RuntimeError, match="on_output"):
            term.read()
    assert b"one\r\ntwo\r\n" in b"".join(got)


def test_resize_changes_what_stty_reports(local_client):
    with open_terminal(local_client, "sh", rows=30, cols=100) as term:
        term.write("stty size\n")
        assert b"30 100" in _read_until(term, b"30 100")
        term.resize(rows=40, cols=120)  # over the websocket
        term.write("stty size\n")
        assert b"40 120" in _read_until(term, b"40 120")
        term.resize_session(rows=12, cols=34)  # over REST
        term.write("stty size; exit 0\n")
        assert b"12 34" in _drain(term)


def test_env_cwd_and_args_reach_the_program(local_client, tmp_path):
    with open_terminal(
        local_client,
        "sh",
        ["-c", 'printf "%s|%s|%s" "$GREETING" "$(pwd)" "$TERM"'],
        env={"GREETING": "hi"},
        cwd=tmp_path,
    ) as term:
        output = _drain(term)
    assert output.decode() == f"hi|{tmp_path}|xterm-256color"


def test_detach_and_reattach_replays_the_history(local_client):
    term = open_terminal(local_client, "sh")
    term.write("echo first-$((1+1))\n")
    _read_until(term, b"first-2")
    session_id, token = term.session_id, term.token
    term.detach()
    info = sandbox_pty_get.sync(session_id, client=local_client)
    assert info.is_alive
    with attach_terminal(local_client, session_id, token) as again:
        replay = _read_until(again, b"first-2")  # history first, before anything new
        assert b"echo first-$((1+1))" in replay
        again.write("exit 6\n")
        _drain(again)
        assert again.returncode == 6


def test_async_detach_and_reattach(local_sandbox):
    async def main() -> tuple[bytes, int]:
        client = local_sandbox.client()
        try:
            term = await aopen_terminal(client, "sh")
            await term.write("echo marker-$((3*3))\n")
            seen = b""
            while b"marker-9" not in seen:
                seen += await term.read(timeout=20)
            await term.detach()
            async with await aattach_terminal(client, term.session_id, term.token) as again:
                await again.write("exit 2\n")
                out = b"".join([c async for c in again])
                return out, await again.wait()
        finally:
            await client.aclose()

    out, code = asyncio.run(main())
    assert b"marker-9" in out
    assert code == 2


def test_killed_terminal_stays_visible_dead_for_the_grace_then_is_gone_as_terminal_not_found():
    # The daemon's lifecycle: DELETE hangs up at once; the session is shown dead (is_alive
    # false, exit_code null, ended_at set) until the grace ends, then it is removed.
    with LocalSandbox(pty_kill_grace=1.0) as sandbox, sandbox.client() as client:
        term = open_terminal(client, "sleep", ["60"])
        session_id = term.session_id
        term.kill()
        info = sandbox_pty_get.sync(session_id, client=client)
        assert (info.is_alive, info.exit_code) == (False, None) and isinstance(info.ended_at, int)
        listed = sandbox_pty_list.sync(client=client)
        assert session_id in {s.session_id for s in listed.sessions}
        deadline = time.monotonic() + 20
        while True:
            try:
                sandbox_pty_get.sync(session_id, client=client)
            except TerminalNotFoundError as exc:  # a generated call, too
                assert exc.code == "NOT_FOUND"
                break
            assert time.monotonic() < deadline, "the killed session was never removed"
            time.sleep(0.05)
        listed = sandbox_pty_list.sync(client=client)
        assert session_id not in {s.session_id for s in listed.sessions}


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_killing_a_terminal_sigkills_a_program_that_ignores_sighup():
    with LocalSandbox(pty_kill_grace=0.1) as sandbox, sandbox.client() as client:
        # SIG_IGN survives exec: sleep ignores the hang-up too.
        term = open_terminal(client, "sh", ["-c", "trap '' HUP; echo ready; exec sleep 60"])
        _read_until(term, b"ready")
        pid = sandbox_pty_get.sync(term.session_id, client=client).pid
        term.kill()
        deadline = time.monotonic() + 5
        while not _gone(pid):
            assert time.monotonic() < deadline, "a program ignoring SIGHUP outlived the kill"
            time.sleep(0.02)


def test_a_full_history_drops_its_oldest_output_and_keeps_the_newest():
    history = _History(limit=10)
    for chunk in (b"abcd", b"efgh", b"ijkl", b"mn"):
        history.append(chunk)
    assert b"".join(history) == b"efghijklmn"
    history.append(b"opq")
    assert b"".join(history) == b"hijklmnopq"


def test_read_raises_timeout_error_when_nothing_arrives_in_time(local_client):
    with open_terminal(local_client, "sh", ["-c", "stty -echo; echo ready; read x"]) as term:
        _read_until(term, b"ready\r\n")
        outcome: queue.Queue[object] = queue.Queue()

        def read() -> None:
            try:
                outcome.put(term.read(timeout=0.3))
            except TimeoutError as exc:
                outcome.put(exc)

        # In a thread, so that a read that never times out fails the test instead of hanging it.
        threading.Thread(target=read, daemon=True).start()
        assert isinstance(outcome.get(timeout=10), TimeoutError)
        term.kill()


def test_closing_a_terminal_nobody_reads_does_not_hang(local_sandbox, local_client):
    term = open_terminal(local_client, "sh", ["-c", "stty raw -echo; exec cat /dev/zero"])
    # The output stops flowing once the client's queue is full and its receiving thread blocks.
    session = local_sandbox._app.state.pty_table.get(term.session_id)
    held_at = _wait_until_held_back(session, until=1 << 40)
    assert session.produced == held_at > 0, "the output never stopped flowing"
    closer = threading.Thread(target=term.close, daemon=True)
    closer.start()
    closer.join(20)
    assert not closer.is_alive(), "close() hung on a terminal whose output nobody read"


def test_killed_elsewhere_closes_with_1001(local_client):
    with open_terminal(local_client, "sleep", ["60"]) as term:
        other = local_client.get_httpx_client()
        other.delete(f"/api/v1/pty/{term.session_id}")
        with pytest.raises(TerminalClosedError) as info:
            term.wait(timeout=20)
    assert info.value.close_code == 1001


def test_wrong_token_and_unknown_session_are_refused(local_client):
    with open_terminal(local_client, "sleep", ["60"]) as term:
        with pytest.raises(AuthenticationError) as info:
            attach_terminal(local_client, term.session_id, "0" * 64)
        assert info.value.status_code == 403
        assert info.value.code == "INVALID_TOKEN"
    with pytest.raises(TerminalNotFoundError):
        attach_terminal(local_client, "nosuchsession", "0" * 64)


def test_bad_arguments_send_nothing(recorder):
    from tensorlake_sandbox import sandbox_client

    client = sandbox_client(base_url=recorder.url, api_key="k")
    with pytest.raises(ValueError, match="rows"):
        open_terminal(client, "sh", rows=0)
    with pytest.raises(TypeError, match="args"):
        open_terminal(client, "sh", "-c echo")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="token"):
        attach_terminal(client, "abc", "has space")
    with pytest.raises(TypeError, match="'rowz' for a new terminal"):
        open_terminal(client, "sh", rowz=30)  # type: ignore[call-arg]
    assert recorder.requests == []


def test_connecting_to_nothing_raises_a_connection_error_not_sent(closed_port):
    from tensorlake_sandbox import SandboxConnectionError, sandbox_client

    client = sandbox_client(base_url=f"http://127.0.0.1:{closed_port}", api_key="k")
    with pytest.raises(SandboxConnectionError, match="ConnectError") as info:
        attach_terminal(client, "abc", "0" * 64)
    assert info.value.may_have_been_sent is False

    async def main() -> None:
        with pytest.raises(SandboxConnectionError, match="ConnectError"):
            await aattach_terminal(client, "abc", "0" * 64)

    asyncio.run(main())


def test_terminal_never_shows_its_token(local_client):
    with open_terminal(local_client, "sleep", ["60"]) as term:
        assert term.token not in repr(term)
        assert term.session_id in repr(term)


# -- the wire protocol, spoken directly --------------------------------------------------------


def _raw_session(client, command: list[str]) -> tuple[str, str]:
    http = client.get_httpx_client()
    created = http.post("/api/v1/pty", json={"command": command[0], "args": command[1:]}).json()
    return created["session_id"], created["token"]


def _ws_client(sandbox: LocalSandbox) -> httpx.Client:
    return httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {sandbox.token}"})


def test_nothing_is_sent_before_ready_then_exit_frame_and_close_reason(local_sandbox, local_client):
    session_id, token = _raw_session(local_client, ["sh", "-c", "echo early; exit 9"])
    with (
        _ws_client(local_sandbox) as http,
        connect_ws(f"/api/v1/pty/{session_id}/ws", http, headers={"X-PTY-Token": token}) as ws,
    ):
        # The program has printed and exited, and the server has read all its output: yet
        # nothing comes before READY.
        deadline = time.monotonic() + 20
        while local_client.get_httpx_client().get(f"/api/v1/pty/{session_id}").json()["is_alive"]:
            assert time.monotonic() < deadline, "the program did not exit"
            time.sleep(0.02)
        with pytest.raises(queue.Empty):
            ws.receive_bytes(timeout=0.5)
        ws.send_text("ignored")  # text frames are ignored
        ws.send_bytes(b"\x02")
        frames = []
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                frames.append(ws.receive_bytes(timeout=20))
    assert closed.value.code == 1000
    assert closed.value.reason == "exit:9"
    assert frames[-1] == b"\x03" + struct.pack(">i", 9)
    assert b"early" in b"".join(f[1:] for f in frames[:-1])
    assert all(f[0] == 0 and len(f) <= 4097 for f in frames[:-1])


def test_over_1_mib_of_output_before_ready_closes_with_1008(local_sandbox, local_client):
    session_id, token = _raw_session(local_client, ["sh", "-c", "stty raw -echo; exec cat /dev/zero"])
    with (
        _ws_client(local_sandbox) as http,
        connect_ws(f"/api/v1/pty/{session_id}/ws", http, headers={"X-PTY-Token": token}) as ws,
    ):
        session = local_sandbox._app.state.pty_table.get(session_id)
        start = session.produced
        deadline = time.monotonic() + 20
        while session.produced - start <= PRE_READY_LIMIT + 65536:
            assert time.monotonic() < deadline, "the program produced too little"
            time.sleep(0.05)
        ws.send_bytes(b"\x02")
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                ws.receive_bytes(timeout=20)
    assert closed.value.code == 1008
    local_client.get_httpx_client().delete(f"/api/v1/pty/{session_id}")


def test_token_in_query_is_accepted(local_sandbox, local_client):
    session_id, token = _raw_session(local_client, ["sh", "-c", "exit 0"])
    with (
        _ws_client(local_sandbox) as http,
        connect_ws(f"/api/v1/pty/{session_id}/ws?token={token}", http) as ws,
    ):
        ws.send_bytes(b"\x02")
        with pytest.raises(WebSocketDisconnect) as closed:
            while True:
                ws.receive_bytes(timeout=20)
    assert closed.value.reason == "exit:0"


def test_websocket_takes_the_session_token_alone_but_refuses_a_wrong_bearer_key(local_sandbox, local_client):
    # Tensorlake's docs attach with the session token alone (no Authorization header).
    session_id, token = _raw_session(local_client, ["sh", "-c", "echo attached; sleep 30"])
    url = f"{local_sandbox.base_url}/api/v1/pty/{session_id}/ws"
    from httpx_ws import WebSocketUpgradeError

    with httpx.Client() as http:
        with connect_ws(url, http, headers={"X-PTY-Token": token}) as ws:
            ws.send_bytes(b"\x02")
            seen = b""
            while b"attached" not in seen:
                seen += ws.receive_bytes(timeout=20)[1:]
        with pytest.raises(WebSocketUpgradeError) as info, connect_ws(url, http):
            pass
        assert info.value.response.status_code == 403  # no token at all
        wrong_key = {"X-PTY-Token": token, "Authorization": "Bearer wrong"}
        with pytest.raises(WebSocketUpgradeError) as info, connect_ws(url, http, headers=wrong_key):
            pass
        assert info.value.response.status_code == 401
        headers = {
            "X-PTY-Token": token,
            "Authorization": f"Bearer {local_sandbox.token}",
            "Host": "evil.example",
        }
        with pytest.raises(WebSocketUpgradeError) as info, connect_ws(url, http, headers=headers):
            pass
        assert info.value.response.status_code == 421
    local_client.get_httpx_client().delete(f"/api/v1/pty/{session_id}")


def test_create_validates_and_clamps(local_client):
    http = local_client.get_httpx_client()
    with pytest.raises(Exception) as info:
        http.post("/api/v1/pty", json={"args": ["x"]})
    assert getattr(info.value, "status_code", None) == 400
    created = http.post(
        "/api/v1/pty", json={"command": "sleep", "args": ["30"], "rows": 9999, "cols": 0}
    ).json()
    info_ = http.get(f"/api/v1/pty/{created['session_id']}").json()
    assert (info_["rows"], info_["cols"]) == (500, 1)
    assert "token" not in info_
    assert len(created["token"]) == 64 and int(created["token"], 16) >= 0
    assert len(created["session_id"]) == 21
    http.delete(f"/api/v1/pty/{created['session_id']}")


def test_64_sessions_then_429():
    with LocalSandbox() as sandbox:
        client = sandbox.client()
        http = client.get_httpx_client()
        for _ in range(MAX_SESSIONS):
            assert http.post("/api/v1/pty", json={"command": "sleep", "args": ["30"]}).status_code == 201
        with pytest.raises(TooManyTerminalsError) as info:
            open_terminal(client, "sh")
        assert info.value.code == "TOO_MANY_SESSIONS"
        client.close()


def test_idle_session_is_killed():
    with LocalSandbox() as sandbox:
        sandbox._app.state.pty_table.idle_timeout = 0.5
        client = sandbox.client()
        session_id, _ = _raw_session(client, ["sleep", "60"])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            listed = sandbox_pty_list.sync(client=client)
            if session_id not in {s.session_id for s in listed.sessions}:
                break
            time.sleep(0.1)
        else:
            pytest.fail("an idle session was not killed")
        client.close()


def test_children_do_not_outlive_the_server():
    import os

    with LocalSandbox() as sandbox:
        client = sandbox.client()
        term = open_terminal(client, "sh", ["-c", "sleep 300 & echo $!; wait"])
        grandchild = int(_read_until(term, b"\n").split()[0])
        term.detach()
        client.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    pytest.fail(f"process {grandchild} outlived the local sandbox")


# -- volume: 10 MiB of binary output, counted and hashed, memory bounded ----------------------

TEN_MIB = 10 * 1024 * 1024
_PRODUCER = (
    f"import random, sys; data = random.Random(7).randbytes({TEN_MIB}); "
    "[sys.stdout.buffer.write(data[i:i+65536]) for i in range(0, len(data), 65536)]"
)


def _wait_until_held_back(session, timeout: float = 20.0, until: int = TEN_MIB) -> int:
    """Wait until the output stops flowing (held back, or ``until`` bytes read); bytes read so far."""
    deadline = time.monotonic() + timeout
    last, still_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now = session.produced
        if now != last:
            last, still_since = now, time.monotonic()
        elif time.monotonic() - still_since > 0.5 or now >= until:
            break
        time.sleep(0.05)
    return last


def test_10_mib_of_binary_output_arrives_whole_in_order_with_bounded_memory(local_sandbox, local_client):
    import sys

    expected = hashlib.sha256(random.Random(7).randbytes(TEN_MIB)).hexdigest()
    tracemalloc.start()
    try:
        # Raw mode first, so that the line discipline passes every byte through untouched.
        # The program waits for a line, so that the flood starts once this client is attached.
        script = f"stty raw -echo; printf READY; read go; exec {sys.executable} -c '{_PRODUCER}'"
        with open_terminal(local_client, "sh", ["-c", script]) as term:
            head = _read_until(term, b"READY")
            term.write(b"go\n")
            # A reader that stops reading: the sandbox must hold the program back, not buffer its output.
            session = local_sandbox._app.state.pty_table.get(term.session_id)
            produced = _wait_until_held_back(session)
            queued = max((c.queue.qsize() for c in list(session.clients)), default=0)
            assert queued <= QUEUE_CHUNKS + 1, f"{queued} chunks queued in the sandbox"
            digest = hashlib.sha256()
            rest = head[head.index(b"READY") + 5 :]
            digest.update(rest)
            count = len(rest)
            for chunk in term:
                digest.update(chunk)
                count += len(chunk)
            assert term.wait(timeout=10) == 0
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"held back after {produced / 2**20:.2f} MiB; peak {peak / 2**20:.2f} MiB")
    assert count == TEN_MIB
    assert digest.hexdigest() == expected
    # Client and server run in this process: both sides together stay far below the 10 MiB sent.
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"


def test_a_terminal_that_exits_by_itself_stays_visible_with_its_code_until_its_ttl():
    with LocalSandbox(pty_exited_ttl=0.5) as sandbox, sandbox.client() as client:
        created = client.get_httpx_client().post(
            "/api/v1/pty", json={"command": "sh", "args": ["-c", "exit 3"]}
        )
        session_id = created.json()["session_id"]
        deadline = time.monotonic() + 20
        while (info := sandbox_pty_get.sync(session_id, client=client)).is_alive:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert info.exit_code == 3 and isinstance(info.ended_at, int)
        while True:
            try:
                sandbox_pty_get.sync(session_id, client=client)
            except TerminalNotFoundError:
                break
            assert time.monotonic() < deadline, "the exited session was never removed"
            time.sleep(0.02)
