"""The sync client's per-request savings (`tensorlake_sandbox._httpx_speedups`) change nothing sent.

The stream-level cases use an in-memory inner stream that records each socket write (which
writes a real socket coalesces cannot be observed from the server side); the end-to-end
cases run against the real recording server on 127.0.0.1.
"""

from __future__ import annotations

import io

import httpcore
import pytest

from tensorlake_api_client.api.sandbox_processes import sandbox_process_stdin
from tensorlake_api_client.types import File
from tensorlake_sandbox import sandbox_client, write_stdin
from tensorlake_sandbox._httpx_speedups import HeadWithBodyBackend, _HeadWithBodyStream

KEY = "tl_test_key_0123456789"


class _Recorded(httpcore.NetworkStream):
    """An inner stream that records writes and serves canned reads."""

    def __init__(self, fail_writes: bool = False) -> None:
        self.log: list[tuple[str, bytes]] = []
        self.fail_writes = fail_writes

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.log.append(("read", b""))
        return b"HTTP/1.1 204 No Content\r\n\r\n"

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if self.fail_writes:
            raise httpcore.WriteError("broken pipe")
        self.log.append(("write", bytes(buffer)))

    def close(self) -> None:
        self.log.append(("close", b""))


HEAD = b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n"


def test_a_small_request_goes_out_in_one_write_head_first():
    inner = _Recorded()
    s = _HeadWithBodyStream(inner)
    s.write(HEAD)
    s.write(b"hello")
    s.read(65536)
    assert inner.log == [("write", HEAD + b"hello"), ("read", b"")]


def test_the_next_request_on_the_connection_is_joined_too():
    inner = _Recorded()
    s = _HeadWithBodyStream(inner)
    for body in (b"one", b"two"):
        s.write(HEAD)
        s.write(body)
        s.read(65536)
    assert [x for x in inner.log if x[0] == "write"] == [("write", HEAD + b"one"), ("write", HEAD + b"two")]


def test_a_large_body_is_not_copied_into_the_head():
    inner = _Recorded()
    s = _HeadWithBodyStream(inner)
    big = b"b" * (1 << 20)
    s.write(HEAD)
    s.write(big)
    s.write(b"tail")
    s.read(65536)
    assert inner.log == [("write", HEAD), ("write", big), ("write", b"tail"), ("read", b"")]


def test_a_request_without_a_body_is_sent_before_the_response_is_read():
    inner = _Recorded()
    s = _HeadWithBodyStream(inner)
    s.write(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    s.read(65536)
    assert inner.log == [("write", b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"), ("read", b"")]


def test_a_failed_held_write_is_ignored_as_httpcore_does_and_the_read_decides():
    # httpcore swallows a WriteError while sending a request and reads the response anyway.
    inner = _Recorded(fail_writes=True)
    s = _HeadWithBodyStream(inner)
    s.write(b"GET / HTTP/1.1\r\n\r\n")  # held: nothing written yet
    assert s.read(65536).startswith(b"HTTP/1.1 204")
    with pytest.raises(httpcore.WriteError):
        s.write(b"GET / HTTP/1.1\r\n\r\n")
        s.write(b"body")  # the joined write fails as the body write would have


def test_closing_drops_what_is_held():
    inner = _Recorded()
    s = _HeadWithBodyStream(inner)
    s.write(HEAD)
    s.close()
    assert inner.log == [("close", b"")]


def test_the_default_sync_transport_uses_the_backend_and_a_custom_one_is_left_alone():
    import httpx

    client = sandbox_client(base_url="http://127.0.0.1:9", api_key=KEY)
    pool = client.get_httpx_client()._transport._pool  # type: ignore[attr-defined]
    assert isinstance(pool._network_backend, HeadWithBodyBackend)
    mine = httpx.HTTPTransport()
    custom = sandbox_client(base_url="http://127.0.0.1:9", api_key=KEY, httpx_args={"transport": mine})
    assert custom.get_httpx_client()._transport is mine


# -- end to end: the same bytes, paths and cookies ---------------------------------------------------


def test_exact_bytes_and_paths_on_a_real_server(recorder):
    client = sandbox_client(base_url=recorder.url, api_key=KEY)
    payloads = [b"", b"x" * 16, b"y" * 70_000, bytes(range(256)) * 9000]
    for pid, data in enumerate(payloads, start=1):
        sandbox_process_stdin.sync_detailed(pid, client=client, body=File(payload=io.BytesIO(data)))
    write_stdin(client, 99, b"z" * 100)
    got = [(r.path, r.length, r.head[:32]) for r in recorder.requests]
    expected = [(f"/api/v1/processes/{pid}/stdin", len(d), d[:32]) for pid, d in enumerate(payloads, start=1)]
    assert got == [*expected, ("/api/v1/processes/99/stdin", 100, b"z" * 32)]
    client.close()


def test_a_cookie_set_by_the_server_is_still_kept(recorder):
    client = sandbox_client(base_url=recorder.url, api_key=KEY)
    recorder.reply(204, set_cookie="session=abc; Path=/")
    sandbox_process_stdin.sync_detailed(1, client=client, body=File(payload=io.BytesIO(b"a")))
    sandbox_process_stdin.sync_detailed(1, client=client, body=File(payload=io.BytesIO(b"b")))
    assert recorder.requests[1].headers.get("cookie") == "session=abc"
    client.close()
