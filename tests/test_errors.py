"""Unit tests for the status -> typed error rule and raise_for_response."""

import pickle
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
