"""Unit tests for the status -> typed error rule and raise_for_response."""

import contextlib
import pickle
import socket
import threading
from collections.abc import Iterator
from http import HTTPStatus

import httpx
import pytest

from tensorlake_api_client.types import Response
from tensorlake_sandbox import (
    AuthenticationError,
    BadRequestError,
    PayloadTooLargeError,
    ProcessNotFoundError,
    SandboxConnectionError,
    SandboxError,
    SandboxStatusError,
    SandboxTimeoutError,
    SandboxUnavailableError,
    StdinNotWritableError,
    sandbox_client,
)
from tensorlake_sandbox._errors import error_for_status, raise_for_response, transport_error

JSON_400 = b'{"error":"stdin is not writable","code":"STDIN_NOT_WRITABLE"}'


@pytest.mark.parametrize(
    ("status", "body", "cls", "code", "message"),
    [
        (400, JSON_400, StdinNotWritableError, "STDIN_NOT_WRITABLE", "stdin is not writable"),
        (400, b'{"error":"no pipe"}', StdinNotWritableError, None, "no pipe"),
        (400, b'{"error":"bad signal","code":"BAD_REQUEST"}', BadRequestError, "BAD_REQUEST", "bad signal"),
        (401, b'{"error":"missing key","code":"UNAUTHORIZED"}', AuthenticationError, "UNAUTHORIZED", None),
        (403, b"", AuthenticationError, None, "Forbidden"),
        (
            404,
            b'{"error":"Process 42 not found","code":"NOT_FOUND"}',
            ProcessNotFoundError,
            "NOT_FOUND",
            None,
        ),
        (413, b'{"error":"too large"}', PayloadTooLargeError, None, "too large"),
        (502, b"<html>Bad Gateway</html>", SandboxUnavailableError, None, "<html>Bad Gateway</html>"),
        (503, b'{"error":"not ready","code":"SANDBOX_NOT_READY"}', SandboxUnavailableError, None, None),
        (504, b"", SandboxUnavailableError, None, "Gateway Timeout"),
        (500, b'{"error":"boom"}', SandboxStatusError, None, "boom"),
        (520, b"<html>origin error", SandboxStatusError, None, "<html>origin error"),
        (599, b"", SandboxStatusError, None, "unexpected status"),
        (418, b"[1,2]", SandboxStatusError, None, "[1,2]"),
    ],
)
def test_error_for_status(status, body, cls, code, message):
    err = error_for_status(status, body)
    assert type(err) is cls
    assert err.status_code == status
    if code is not None:
        assert err.code == code
    if message is not None:
        assert err.message == message
    assert str(status) in str(err)


@pytest.mark.parametrize(
    "body",
    [b"", b"not json", b"{", b'{"code": 5}', b'{"error": null}', b'"a string"', b"\xff\xfe\x00", b"null"],
)
def test_malformed_bodies_never_escape_as_parse_errors(body):
    err = error_for_status(400, body)
    assert isinstance(err, StdinNotWritableError)
    assert err.message


def test_path_decides_400_when_no_code():
    assert type(error_for_status(400, b"{}", path="/api/v1/processes/7/stdin")) is StdinNotWritableError
    assert type(error_for_status(400, b"{}", path="/api/v1/processes/7/stdin/close")) is StdinNotWritableError
    assert type(error_for_status(400, b"{}", path="/api/v1/processes/7/signal")) is BadRequestError


@pytest.mark.parametrize("path", ["/api/v1/processes", "/api/v1/processes/run", "/api/v1/pty"])
def test_a_500_is_a_spawn_error_only_when_it_answers_a_start(path):
    from tensorlake_sandbox import SpawnError

    for method in ("POST", None):  # None: the request is not known (a generated response)
        assert type(error_for_status(500, b"", path=path, method=method)) is SpawnError
    for method in ("GET", "DELETE"):  # listing processes or terminals is not starting one
        assert type(error_for_status(500, b"", path=path, method=method)) is SandboxStatusError
    answer = httpx.Response(500, request=httpx.Request("GET", f"http://127.0.0.1{path}"))
    with pytest.raises(SandboxStatusError) as info:
        raise_for_response(answer)
    assert type(info.value) is SandboxStatusError


def test_all_errors_are_sandbox_errors():
    for cls in (
        StdinNotWritableError,
        BadRequestError,
        AuthenticationError,
        ProcessNotFoundError,
        PayloadTooLargeError,
        SandboxUnavailableError,
    ):
        assert issubclass(cls, SandboxError)


def test_raise_for_response_generated_response():
    ok: Response[None] = Response(status_code=HTTPStatus.NO_CONTENT, content=b"", headers={}, parsed=None)
    assert raise_for_response(ok) is None
    bad: Response[None] = Response(
        status_code=HTTPStatus.NOT_FOUND,
        content=b'{"error":"Process 9 not found","code":"NOT_FOUND"}',
        headers={},
        parsed=None,
    )
    with pytest.raises(ProcessNotFoundError, match="Process 9 not found") as info:
        raise_for_response(bad)
    assert info.value.code == "NOT_FOUND"
    assert info.value.status_code == 404


def test_raise_for_response_httpx_response_uses_path():
    request = httpx.Request("POST", "http://127.0.0.1/api/v1/processes/3/signal")
    response = httpx.Response(400, content=b"{}", request=request)
    with pytest.raises(BadRequestError) as info:
        raise_for_response(response)
    assert type(info.value) is BadRequestError
    assert raise_for_response(httpx.Response(200, request=request)) is None


@pytest.mark.parametrize(
    ("httpx_error", "base", "sent"),
    [
        (httpx.ConnectError("refused"), SandboxConnectionError, False),
        (httpx.ConnectTimeout("slow connect"), SandboxTimeoutError, False),
        (httpx.PoolTimeout("pool"), SandboxTimeoutError, False),
        (httpx.ReadTimeout("slow"), SandboxTimeoutError, True),
        (httpx.WriteTimeout("slow write"), SandboxTimeoutError, True),
        (httpx.RemoteProtocolError("dropped"), SandboxConnectionError, True),
        (httpx.ReadError("reset"), SandboxConnectionError, True),
        (httpx.WriteError("broken pipe"), SandboxConnectionError, True),
        (httpx.LocalProtocolError("bad header"), SandboxConnectionError, False),
        (httpx.UnsupportedProtocol("ftp"), SandboxConnectionError, False),
    ],
)
def test_transport_errors_become_connection_errors_with_exact_may_have_been_sent(httpx_error, base, sent):
    err = transport_error(httpx_error)
    assert type(err) is base and not isinstance(err, SandboxStatusError)
    assert err.may_have_been_sent is sent
    assert err.status_code is None
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is type(err) and str(copy) == str(err) and copy.may_have_been_sent is sent


def test_the_tree_has_status_errors_and_connection_errors_under_separate_parents():
    from tensorlake_sandbox import (
        DeliveryUnknownError,
        TerminalClosedError,
        TerminalNotFoundError,
        TooManyTerminalsError,
    )

    for cls in (
        BadRequestError,
        StdinNotWritableError,
        AuthenticationError,
        ProcessNotFoundError,
        TerminalNotFoundError,
        PayloadTooLargeError,
        TooManyTerminalsError,
        SandboxUnavailableError,
    ):
        assert issubclass(cls, SandboxStatusError) and not issubclass(cls, SandboxConnectionError)
    assert issubclass(SandboxTimeoutError, SandboxConnectionError)
    assert not issubclass(SandboxConnectionError, SandboxStatusError)
    for cls in (SandboxStatusError, SandboxConnectionError, DeliveryUnknownError, TerminalClosedError):
        assert cls.__bases__ == (SandboxError,)


def test_a_status_error_carries_its_response_and_pickles():
    request = httpx.Request("POST", "http://127.0.0.1/api/v1/processes/3/stdin")
    response = httpx.Response(404, content=b'{"error":"gone","code":"NOT_FOUND"}', request=request)
    with pytest.raises(ProcessNotFoundError) as info:
        raise_for_response(response)
    assert info.value.response is response
    copy = pickle.loads(pickle.dumps(SandboxUnavailableError("down", status_code=503, code="X")))
    assert (type(copy), copy.status_code, copy.code, str(copy)) == (
        SandboxUnavailableError,
        503,
        "X",
        "HTTP 503 X: down",
    )


# -- failures mid-body, and malformed answers, are connection errors -------------------------------


CUT_SHORT = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"


@contextlib.contextmanager
def _cut_short_server(answer: bytes = CUT_SHORT) -> Iterator[str]:
    """Answers every request with ``answer`` and closes (by default: a 200 that announces 100
    bytes and sends 10)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head and (data := conn.recv(65536)):
                    head += data
                conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def test_a_body_cut_short_through_the_own_transport_is_a_connection_error() -> None:
    with _cut_short_server() as url, sandbox_client(base_url=url, api_key="k") as client:
        with pytest.raises(SandboxConnectionError) as info:
            client.get_httpx_client().get("/x")
        assert isinstance(info.value.__cause__, httpx.TransportError)


def test_a_malformed_answer_is_a_connection_error() -> None:
    with (
        _cut_short_server(b"NOT HTTP AT ALL\r\n\r\n") as url,
        sandbox_client(base_url=url, api_key="k") as client,
        pytest.raises(SandboxConnectionError, match="broke the HTTP exchange"),
    ):
        client.get_httpx_client().get("/x")
