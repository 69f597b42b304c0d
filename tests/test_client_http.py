"""The generated functions through the shim's client, against a real recording HTTP server
on 127.0.0.1: exact bytes, headers and path on the sync and async paths, typed errors for
every kind of error response, no redirects, and bad input refused before anything is sent."""

import asyncio
import gc
import hashlib
import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tensorlake_api_client.api.sandbox_processes import (
    sandbox_process_get,
    sandbox_process_stdin,
)
from tensorlake_api_client.types import File
from tensorlake_sandbox import (
    AuthenticationError,
    BadRequestError,
    PayloadTooLargeError,
    ProcessNotFoundError,
    SandboxClient,
    SandboxError,
    SandboxStatusError,
    SandboxUnavailableError,
    StdinNotWritableError,
    sandbox_client,
)

KEY = "tl_test_key_0123456789"


@pytest.fixture
def client(recorder) -> SandboxClient:
    c = sandbox_client(base_url=recorder.url, api_key=KEY)
    yield c
    c.close()


def run(client: SandboxClient, coro):
    """asyncio.run(coro), then close the client's async connections in that loop."""

    async def main():
        try:
            return await coro
        finally:
            await client.aclose()

    return asyncio.run(main())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _assert_stdin_request(received, pid: int, data: bytes) -> None:
    assert received.method == "POST"
    assert received.path == f"/api/v1/processes/{pid}/stdin"
    assert received.headers["authorization"] == f"Bearer {KEY}"
    assert received.headers["content-type"] == "application/octet-stream"
    assert received.length == len(data)
    assert received.sha256 == _sha(data)


PAYLOADS = [b"print('hello')\n", bytes(range(256)) * 100, b"\x00", b""]


@pytest.mark.parametrize("data", PAYLOADS, ids=["text", "binary", "nul", "empty"])
def test_sync_bytesio(client, recorder, data):
    response = sandbox_process_stdin.sync_detailed(42, client=client, body=File(payload=io.BytesIO(data)))
    assert response.status_code == 204
    assert len(recorder.requests) == 1
    _assert_stdin_request(recorder.requests[0], 42, data)
    if data:
        assert recorder.requests[0].headers["content-length"] == str(len(data))


@pytest.mark.parametrize("data", PAYLOADS, ids=["text", "binary", "nul", "empty"])
def test_async_bytesio(client, recorder, data):
    response = run(
        client, sandbox_process_stdin.asyncio_detailed(7, client=client, body=File(payload=io.BytesIO(data)))
    )
    assert response.status_code == 204
    _assert_stdin_request(recorder.requests[0], 7, data)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_file_from_the_middle(client, recorder, tmp_path, mode):
    data = os.urandom(300_000)
    path = tmp_path / "input.bin"
    path.write_bytes(data)
    with open(path, "rb") as f:
        f.seek(123_457)
        body = File(payload=f)
        if mode == "sync":
            response = sandbox_process_stdin.sync_detailed(1, client=client, body=body)
        else:
            response = run(client, sandbox_process_stdin.asyncio_detailed(1, client=client, body=body))
    assert response.status_code == 204
    _assert_stdin_request(recorder.requests[0], 1, data[123_457:])
    assert recorder.requests[0].headers["content-length"] == str(len(data) - 123_457)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("size", [10, 64 * 1024 + 4, 200_000], ids=["small", "at-limit", "streamed"])
def test_bytesio_from_the_middle(client, recorder, mode, size):
    """Small in-memory bodies go as bytes, larger ones as a stream: both from the read position."""
    data = os.urandom(size)
    buf = io.BytesIO(data)
    buf.seek(4)
    body = File(payload=buf)
    if mode == "sync":
        sandbox_process_stdin.sync_detailed(5, client=client, body=body)
    else:
        run(client, sandbox_process_stdin.asyncio_detailed(5, client=client, body=body))
    _assert_stdin_request(recorder.requests[0], 5, data[4:])
    assert recorder.requests[0].headers["content-length"] == str(size - 4)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_pipe_body_goes_chunked(client, recorder, mode):
    r, w = os.pipe()
    os.write(w, b"from a pipe\n" * 1000)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        body = File(payload=f)
        if mode == "sync":
            sandbox_process_stdin.sync_detailed(3, client=client, body=body)
        else:
            run(client, sandbox_process_stdin.asyncio_detailed(3, client=client, body=body))
    _assert_stdin_request(recorder.requests[0], 3, b"from a pipe\n" * 1000)
    assert "content-length" not in recorder.requests[0].headers


def test_50_mib_file_both_paths(client, recorder, tmp_path):
    path = tmp_path / "big.bin"
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for _ in range(50):
            f.write(block)
    expected = hashlib.sha256(block * 50).hexdigest()
    with open(path, "rb") as f:
        assert sandbox_process_stdin.sync_detailed(9, client=client, body=File(payload=f)).status_code == 204
    with open(path, "rb") as f:
        response = run(client, sandbox_process_stdin.asyncio_detailed(9, client=client, body=File(payload=f)))
        assert response.status_code == 204
    for received in recorder.requests:
        assert received.length == 50 << 20
        assert received.sha256 == expected
        assert received.headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_one_client_across_event_loops(client, recorder):
    """A client used under a second asyncio.run (without aclose) must still work."""
    for i in range(2):
        asyncio.run(
            sandbox_process_stdin.asyncio_detailed(i, client=client, body=File(payload=io.BytesIO(b"x")))
        )
    run(client, sandbox_process_stdin.asyncio_detailed(2, client=client, body=File(payload=io.BytesIO(b"x"))))
    gc.collect()  # the connections of the two unclosed loops are dropped here, not later
    assert [r.path for r in recorder.requests] == [f"/api/v1/processes/{i}/stdin" for i in range(3)]


ERROR_CASES = [
    (400, b'{"error":"stdin is not writable","code":"STDIN_NOT_WRITABLE"}', StdinNotWritableError),
    (400, b"<html>bad request</html>", StdinNotWritableError),
    (400, b'{"code":"X"}', BadRequestError),
    (401, b'{"error":"bad key"}', AuthenticationError),
    (404, b'{"message":"no error key"}', ProcessNotFoundError),
    (404, b"not json at all", ProcessNotFoundError),
    (413, b"", PayloadTooLargeError),
    (500, b"{", SandboxStatusError),
    (502, b"<html>", SandboxUnavailableError),
    (503, b'{"error":"starting","code":"SANDBOX_NOT_READY"}', SandboxUnavailableError),
    (520, b"<html>cloudflare</html>", SandboxStatusError),
    (599, b"", SandboxStatusError),
]


@pytest.mark.parametrize(("status", "body", "cls"), ERROR_CASES)
def test_error_statuses_raise_typed_errors_sync(client, recorder, status, body, cls):
    recorder.reply(status, body)
    with pytest.raises(cls) as info:
        sandbox_process_stdin.sync_detailed(11, client=client, body=File(payload=io.BytesIO(b"abc")))
    assert type(info.value) is cls
    assert info.value.status_code == status
    assert KEY not in str(info.value)


@pytest.mark.parametrize(("status", "body", "cls"), ERROR_CASES)
def test_error_statuses_raise_typed_errors_async(client, recorder, status, body, cls):
    recorder.reply(status, body)
    with pytest.raises(cls) as info:
        run(
            client,
            sandbox_process_stdin.asyncio_detailed(11, client=client, body=File(payload=io.BytesIO(b"abc"))),
        )
    assert type(info.value) is cls


def test_sync_returns_only_on_success(client, recorder):
    """The generated `sync()` returns None for a 204 and, without the shim, for a 500 too."""
    recorder.reply(500, b'{"error":"boom"}')
    with pytest.raises(SandboxError, match="boom"):
        sandbox_process_stdin.sync(4, client=client, body=File(payload=io.BytesIO(b"x")))
    assert sandbox_process_stdin.sync(4, client=client, body=File(payload=io.BytesIO(b"x"))) is None


def test_redirects_are_not_followed(client, recorder):
    recorder.reply(307, b"", location="http://127.0.0.2:1/elsewhere")
    with pytest.raises(SandboxError) as info:
        sandbox_process_get.sync_detailed(1, client=client)
    assert info.value.status_code == 307
    assert len(recorder.requests) == 1


def test_key_never_shown(client, recorder, caplog):
    caplog.set_level(logging.DEBUG)
    sandbox_process_stdin.sync_detailed(1, client=client, body=File(payload=io.BytesIO(b"x")))
    recorder.reply(401, b'{"error":"unauthorized"}')
    with pytest.raises(AuthenticationError) as info:
        sandbox_process_stdin.sync_detailed(1, client=client, body=File(payload=io.BytesIO(b"x")))
    http = client.get_httpx_client()
    shown = [
        repr(client),
        str(client),
        repr(http.auth),
        repr(http.headers),
        str(info.value),
        repr(info.value),
    ]
    shown += [r.getMessage() for r in caplog.records]
    assert all(KEY not in text for text in shown), shown
    assert recorder.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_default_timeouts_are_what_the_readme_promises(client):
    # README: "Finite timeouts (60 s per request, 10 s to connect)", on sync and async calls.
    expected = {"connect": 10.0, "read": 60.0, "write": 60.0, "pool": 60.0}
    assert client.get_httpx_client().timeout.as_dict() == expected
    assert client.get_async_httpx_client().timeout.as_dict() == expected


def test_key_from_environment(monkeypatch, recorder):
    monkeypatch.setenv("TENSORLAKE_API_KEY", "env-key")
    with sandbox_client(base_url=recorder.url) as c:
        sandbox_process_stdin.sync_detailed(2, client=c, body=File(payload=io.BytesIO(b"x")))
    assert recorder.requests[0].headers["authorization"] == "Bearer env-key"


BAD_INPUTS = [
    ({"sandbox": "evil.com/x"}, ValueError, "invalid sandbox ID or name"),
    ({"sandbox": "a@b"}, ValueError, "invalid sandbox ID or name"),
    ({"base_url": "http://10.0.0.5:8500"}, ValueError, "plain http://"),
    ({"base_url": "https://u:p@host.example"}, ValueError, "user info"),
    ({}, ValueError, "exactly one of sandbox="),
    ({"sandbox": "abc", "base_url": "https://abc.example"}, ValueError, "exactly one of sandbox="),
    ({"sandbox": "abc", "api_key": "key with space"}, ValueError, "whitespace or control"),
    ({"sandbox": "abc", "api_key": "key\n"}, ValueError, "whitespace or control"),
    ({"sandbox": "abc", "api_key": "kéy"}, ValueError, "non-ASCII"),
    ({"sandbox": "abc", "api_key": ""}, ValueError, "empty"),
]


@pytest.mark.parametrize(("kwargs", "exc", "message"), BAD_INPUTS)
def test_bad_input_rejected_before_sending(kwargs, exc, message):
    kwargs = {"api_key": "k", **kwargs}
    with pytest.raises(exc, match=message) as info:
        sandbox_client(**kwargs)
    assert "key with space" not in str(info.value)


@pytest.mark.parametrize("bad_key", ["key with space", "key\n", "kéy", ""])
def test_bad_key_for_a_reachable_server_sends_nothing(recorder, bad_key):
    # The URL is the recording server's: a request sent for this key would be seen there.
    with pytest.raises(ValueError):
        sandbox_client(base_url=recorder.url, api_key=bad_key)
    assert recorder.requests == []
    # Control: the same call with a good key does reach the recorder, once per request.
    with sandbox_client(base_url=recorder.url, api_key="good-key") as client:
        sandbox_process_stdin.sync_detailed(1, client=client, body=File(payload=io.BytesIO(b"x")))
    assert [r.headers["authorization"] for r in recorder.requests] == ["Bearer good-key"]


def test_missing_key_names_the_variable(monkeypatch):
    monkeypatch.delenv("TENSORLAKE_API_KEY", raising=False)
    with pytest.raises(ValueError, match="TENSORLAKE_API_KEY"):
        sandbox_client("abc")


def test_sandbox_name_builds_https_url():
    with sandbox_client("my-sandbox", api_key="k") as c:
        assert c.get_httpx_client().base_url == httpx.URL("https://my-sandbox.sandbox.tensorlake.ai")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_50_mib_file_streams_with_bounded_memory(recorder, tmp_path, mode):
    """Peak RSS of a client process that sends a 50 MiB file grows by far less than the file."""
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        for _ in range(50):
            f.write(os.urandom(1 << 20))
    out = subprocess.run(
        [sys.executable, "-m", "tests.memory_probe", recorder.url, str(path), mode],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    baseline_kib, peak_kib = map(int, out.split())
    assert recorder.requests[-1].length == 50 << 20
    assert peak_kib - baseline_kib < 10 * 1024, (baseline_kib, peak_kib)


def test_key_and_host_cannot_change_after_creation(client, recorder):
    """The generated client would keep sending the old key; the shim refuses the change."""
    for name in ("token", "prefix", "auth_header_name", "_base_url"):
        with pytest.raises(AttributeError, match="cannot be changed"):
            setattr(client, name, "other")
    evolved = client.with_headers({"X-Trace": "1"}).with_timeout(httpx.Timeout(5.0))
    sandbox_process_stdin.sync_detailed(1, client=evolved, body=File(payload=io.BytesIO(b"x")))
    assert recorder.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert recorder.requests[0].headers["x-trace"] == "1"
    assert isinstance(evolved, SandboxClient)
    evolved.close()
