"""Who may use a local sandbox: bearer token on every request, loopback Host names only (no DNS
rebinding), loopback bind unless --allow-remote, and nothing served beyond the process API.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator

import httpx
import pytest

import tensorlake_sandbox.local as local
from tensorlake_api_client.api.sandbox_processes import sandbox_process_list
from tensorlake_sandbox import AuthenticationError, sandbox_client
from tensorlake_sandbox.local import LocalSandbox
from tensorlake_sandbox.local._security import host_is_loopback, split_host_header


@pytest.fixture
def anon(local_sandbox: LocalSandbox) -> Iterator[httpx.Client]:
    """httpx to the local sandbox with no credentials."""
    with httpx.Client(base_url=local_sandbox.base_url, timeout=10) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_public_names_are_exported_sorted() -> None:
    assert local.__all__ == sorted(local.__all__)
    for name in local.__all__:
        assert hasattr(local, name)
    assert {"LocalSandbox", "main"} <= set(local.__all__)


def test_no_or_wrong_token_is_401(local_sandbox: LocalSandbox, anon: httpx.Client) -> None:
    token = local_sandbox.token
    for headers in (
        {},
        bearer("wrong"),
        bearer(token + "x"),
        bearer(token[:-1]),
        {"Authorization": token},
        {"Authorization": f"Basic {token}"},
        {"Authorization": f"bearer  {token}"},
    ):
        response = anon.get("/api/v1/processes", headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["code"] == "UNAUTHORIZED"
        assert response.headers["www-authenticate"].startswith("Bearer")
    # Every route, every method: even a stdin write with a body.
    assert anon.post("/api/v1/processes/1/stdin", content=b"x" * 100_000).status_code == 401
    assert anon.post("/api/v1/processes", json={"command": "true"}).status_code == 401
    assert anon.get("/api/v1/processes", headers=bearer(token)).status_code == 200


def test_only_the_terminal_websocket_may_leave_out_the_bearer_key(
    local_sandbox: LocalSandbox, anon: httpx.Client
) -> None:
    # The route table (_routes.py) names the one route that takes a session token instead:
    # a websocket upgrade to any other path without the key is 401, like any request.
    upgrade = {
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    for path in ("/api/v1/processes", "/api/v1/pty", "/api/v1/pty/x/resize", "/api/v1/nowhere/ws"):
        response = anon.get(path, headers=upgrade)
        assert response.status_code == 401, path
        assert response.json()["code"] == "UNAUTHORIZED"
    # The terminal's own route gets past the key check to its token check (no such session: 404).
    assert (
        anon.get("/api/v1/pty/no-such-session/ws", headers={**upgrade, "X-PTY-Token": "x"}).status_code == 404
    )


def test_wrong_key_through_the_shim_raises_authentication_error(local_sandbox: LocalSandbox) -> None:
    client = sandbox_client(base_url=local_sandbox.base_url, api_key="not-the-token")
    try:
        with pytest.raises(AuthenticationError) as caught:
            sandbox_process_list.sync_detailed(client=client)
    finally:
        client.get_httpx_client().close()
    assert caught.value.status_code == 401 and caught.value.code == "UNAUTHORIZED"


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:8500",
        "localhost.evil.example",
        "127.0.0.1.nip.io",
        "10.0.0.1",
        "[::2]",
        "",
    ],
)
def test_foreign_host_header_is_rejected_even_with_the_token(
    local_sandbox: LocalSandbox, anon: httpx.Client, host: str
) -> None:
    response = anon.get("/api/v1/processes", headers={**bearer(local_sandbox.token), "Host": host})
    assert response.status_code == 421
    assert response.json()["code"] == "MISDIRECTED_REQUEST"


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST:1234", "127.0.0.1", "127.1.2.3:80", "[::1]", "[::1]:9"]
)
def test_loopback_host_headers_are_accepted(
    local_sandbox: LocalSandbox, anon: httpx.Client, host: str
) -> None:
    response = anon.get("/api/v1/processes", headers={**bearer(local_sandbox.token), "Host": host})
    assert response.status_code == 200


def test_host_header_parsing() -> None:
    assert split_host_header("localhost:8500") == "localhost"
    assert split_host_header("[::1]:8500") == "::1"
    assert split_host_header("[::1]") == "::1"
    assert split_host_header("127.0.0.1") == "127.0.0.1"
    for bad in ("[::1", "[::1]x", "host:port", "::1", "a:1:2"):
        assert split_host_header(bad) == "", bad
    assert host_is_loopback("127.200.0.1") and host_is_loopback("::1") and host_is_loopback("localhost.")
    assert not host_is_loopback("0.0.0.0") and not host_is_loopback("example.com")


def test_nothing_beyond_the_process_api(local_sandbox: LocalSandbox, anon: httpx.Client) -> None:
    auth = bearer(local_sandbox.token)
    # Nothing beyond the documented API (health, info, run and pty are part of it; files are not).
    for path in ("/", "/docs", "/openapi.json", "/api/v1/files", "/api/v1/files/list"):
        response = anon.get(path, headers=auth)
        assert response.status_code in (404, 405), path
        assert response.json()["code"] in ("NOT_FOUND", "METHOD_NOT_ALLOWED")
    patch = anon.patch("/api/v1/processes", headers=auth)
    assert patch.status_code == 405 and set(patch.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}


def test_binds_loopback_only(local_sandbox: LocalSandbox) -> None:
    host, port = httpx.URL(local_sandbox.base_url).host, httpx.URL(local_sandbox.base_url).port
    assert host == "127.0.0.1" and port is not None
    # Reachable on 127.0.0.1. Another loopback address reaches the port only when the socket
    # listens on every address (0.0.0.0): that must be refused. This needs no other interface
    # (works where the hostname resolves only to 127.0.0.1) and sends nothing off the machine.
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.2", port), timeout=5):
        pass
    # The kernel's own view: the port listens on 127.0.0.1 and nowhere else.
    assert listening_addresses(port) == {"127.0.0.1"}


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a TCP socket listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found: set[str] = set()
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        with open(table) as f:
            rows = f.read().splitlines()[1:]
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            address, _, hex_port = local.partition(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            # The kernel prints each 32-bit word in host (little-endian) order.
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.add(str(ipaddress.ip_address(words if width == 16 else words[:4])))
    return found


def test_non_loopback_host_needs_allow_remote(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="allow-remote"):
        LocalSandbox(host="0.0.0.0")
    with pytest.raises(SystemExit) as caught:
        local.main(["--host", "0.0.0.0", "--port", "0"])
    assert caught.value.code == 2
    assert "--allow-remote" in capsys.readouterr().err


def test_help_says_processes_run_as_the_server_user(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        local.main(["--help"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--host", "--port", "--token", "--max-body-bytes", "--allow-remote"):
        assert flag in text
    assert "run as YOUR user" in " ".join(text.split())


def test_extra_hosts_are_accepted_and_nothing_else():
    """`LocalSandbox(extra_hosts=...)` adds Host names (`<id>.local` needs none: it is always accepted)."""
    with LocalSandbox(extra_hosts=["Bench.internal"]) as sb:
        headers = {"Authorization": f"Bearer {sb.token}"}
        with httpx.Client(base_url=sb.base_url, headers=headers) as http:
            assert http.get("/api/v1/processes", headers={"Host": "bench.internal"}).status_code == 200
            assert http.get("/api/v1/processes", headers={"Host": "other.internal"}).status_code == 421
