"""The local sandbox's edges a first hour finds (issue 25): refused websocket upgrades close their
connection, ``--log-requests`` never writes a PTY token, a half-closed request is served, the
server stops without waiting out its grace period, and ``--port notaport`` is one line."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tensorlake_sandbox.local import LocalSandbox
from tensorlake_sandbox.local._runner import GRACEFUL_SHUTDOWN_SECONDS

from .test_local_server import start_server, stop

UPGRADE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


def open_pty(client: httpx.Client) -> dict[str, str]:
    answer = client.post("/api/v1/pty", json={"command": "sleep", "args": ["30"], "rows": 24, "cols": 80})
    assert answer.status_code == 201, answer.text
    session: dict[str, str] = answer.json()
    return session


def refusals(sandbox: LocalSandbox, session: dict[str, str]) -> list[tuple[int, dict[str, str], str]]:
    """(status, headers, path) of the four websocket refusals: 401 (a wrong bearer key sent with
    the right token: the token alone is enough, but a key that is sent must be valid), 403, 404, 421."""
    bearer = {"Authorization": f"Bearer {sandbox.token}"}
    session_id = session["session_id"]
    return [
        (
            401,
            {**UPGRADE, "Authorization": "Bearer wrong", "X-PTY-Token": session["token"]},
            f"/api/v1/pty/{session_id}/ws",
        ),
        (403, {**UPGRADE, **bearer, "X-PTY-Token": "wrong"}, f"/api/v1/pty/{session_id}/ws"),
        (404, {**UPGRADE, **bearer, "X-PTY-Token": "x"}, "/api/v1/pty/no-such-session/ws"),
        (421, {**UPGRADE, **bearer, "Host": "evil.example"}, f"/api/v1/pty/{session_id}/ws"),
    ]


@pytest.fixture
def sandbox():
    with LocalSandbox(port=0) as s:
        yield s


@pytest.mark.parametrize("which", [0, 1, 2, 3], ids=["401", "403", "404", "421"])
def test_a_refused_websocket_upgrade_closes_its_connection(sandbox, which):
    with httpx.Client(base_url=sandbox.base_url, headers={"Authorization": f"Bearer {sandbox.token}"}) as c:
        session = open_pty(c)
        status, headers, path = refusals(sandbox, session)[which]
        plain = httpx.Client(base_url=sandbox.base_url)  # a pooled client, as an SDK holds one
        with plain:
            refused = plain.get(path, headers=headers)
            assert refused.status_code == status, refused.text
            assert refused.headers.get("connection") == "close"
            # The pooled client's next request works (it is not sent on the closed connection).
            for _ in range(3):
                nxt = plain.get("/api/v1/processes", headers={"Authorization": f"Bearer {sandbox.token}"})
                assert nxt.status_code == 200
        c.delete(f"/api/v1/pty/{session['session_id']}")


def run_request(token: str, script: str = "sleep 0.3; echo served") -> bytes:
    body = json.dumps({"command": "sh", "args": ["-c", script]}).encode()
    return (
        b"POST /api/v1/processes/run HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n".encode()
        + f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def read_all(sock: socket.socket) -> bytes:
    sock.settimeout(20)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_half_closed_run_request_is_served_not_killed(sandbox):
    port = int(sandbox.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(run_request(sandbox.token))
        sock.shutdown(socket.SHUT_WR)  # like `curl ... </dev/null` or a client that is done sending
        answer = read_all(sock)  # ends: the connection closes after the answer
    assert b'"line":"served"' in answer
    assert b'"reason":"exited"' in answer and b'"exit_code":0' in answer


def test_a_half_close_before_the_body_is_whole_still_closes(sandbox):
    port = int(sandbox.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(run_request(sandbox.token)[:-5])
        sock.shutdown(socket.SHUT_WR)
        assert b"served" not in read_all(sock)


def test_log_requests_never_writes_a_pty_token():
    server = start_server("--log-requests")
    try:
        with server.client() as c:
            session = open_pty(c)
            secret = session["token"]
            path = f"/api/v1/pty/{session['session_id']}/ws?token={secret}"
            plain = {k: v for k, v in UPGRADE.items()} | {"Authorization": f"Bearer {server.token}"}
            c.get(path, headers=plain)  # the official SDK's form: the token in the query
            c.get(path.replace(secret, "wrong-guess"), headers=plain)
            c.get(f"/api/v1/processes?token={secret}")
            c.delete(f"/api/v1/pty/{session['session_id']}")
    finally:
        _, err = stop(server)
    assert "token=[redacted]" in err and "/ws?token=[redacted]" in err
    assert secret not in err and "wrong-guess" not in err


def test_stop_on_sigterm_ends_an_open_run_stream_with_its_exit_event():
    server = start_server()
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(run_request(server.token, "exec sleep 60"))
            sock.settimeout(20)
            first = b""
            while b"event: start" not in first:
                chunk = sock.recv(65536)
                assert chunk, first
                first += chunk
            started = time.monotonic()
            server.proc.send_signal(signal.SIGTERM)
            rest = read_all(sock)
            took = time.monotonic() - started
    finally:
        _, err = stop(server)
    assert b"event: exit" in rest  # ended by the process's end, not cut off
    assert "ASGI callable returned without completing response" not in err
    # Measured on 2 busy CPUs: about 0.2 s (it was 0.5 s, sse-starlette's shutdown poll).
    assert took < GRACEFUL_SHUTDOWN_SECONDS, f"{took:.2f} s: waited out the grace period"


def test_local_port_that_is_not_a_number_is_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "tensorlake_sandbox.local", "--port", "notaport"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "'notaport' is not a port number" in result.stderr
