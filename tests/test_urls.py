"""Unit tests for where requests go: sandbox_url, base URL checks, loopback detection."""

import pytest

from tensorlake_sandbox._urls import is_loopback_host, normalize_base_url, sandbox_url


@pytest.mark.parametrize(
    ("sandbox", "expected"),
    [
        ("my-sandbox", "https://my-sandbox.sandbox.tensorlake.ai"),
        ("sbx0123abcd", "https://sbx0123abcd.sandbox.tensorlake.ai"),
        ("a", "https://a.sandbox.tensorlake.ai"),
        ("x" * 63, f"https://{'x' * 63}.sandbox.tensorlake.ai"),
        ("My-Env", "https://My-Env.sandbox.tensorlake.ai"),
    ],
)
def test_sandbox_url_valid(sandbox, expected):
    assert sandbox_url(sandbox) == expected


def test_sandbox_url_proxy_host():
    assert sandbox_url("abc", proxy_host="sandbox.example.test") == "https://abc.sandbox.example.test"


@pytest.mark.parametrize(
    ("sandbox", "why"),
    [
        ("", "empty"),
        ("a.b", "'.'"),
        ("evil.com/x", "'.'"),
        ("a/b", "'/'"),
        ("user@evil.com", "'@'"),
        ("a#b", "'#'"),
        ("a?b", "'?'"),
        ("a:8080", "':'"),
        ("a b", "' '"),
        ("a\nb", "'\\n'"),
        ("sändbox", "'ä'"),
        ("x" * 64, "64 characters"),
        ("-abc", "'-'"),
        ("abc-", "'-'"),
        ("a_b", "'_'"),
    ],
)
def test_sandbox_url_rejects_anything_but_one_label(sandbox, why):
    with pytest.raises(ValueError, match="invalid sandbox ID or name") as info:
        sandbox_url(sandbox)
    assert why in str(info.value)


def test_sandbox_url_rejects_non_str():
    with pytest.raises(TypeError, match="sandbox must be a str"):
        sandbox_url(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("proxy_host", ["", "evil.com/", "a..b", "x@y.z", "host:1"])
def test_sandbox_url_rejects_bad_proxy_host(proxy_host):
    with pytest.raises(ValueError, match="invalid proxy_host"):
        sandbox_url("abc", proxy_host=proxy_host)


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST", "localhost.", "127.0.0.1", "127.1.2.3", "::1", "[::1]"]
)
def test_loopback_hosts(host):
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host", ["10.0.0.1", "192.168.1.1", "example.com", "localhost.evil.com", "::2", "", "app.localhost"]
)
def test_non_loopback_hosts(host):
    assert not is_loopback_host(host)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://sbx.sandbox.tensorlake.ai/", "https://sbx.sandbox.tensorlake.ai"),
        ("https://sbx.sandbox.tensorlake.ai:443", "https://sbx.sandbox.tensorlake.ai:443"),
        ("http://127.0.0.1:8500", "http://127.0.0.1:8500"),
        ("http://localhost:8500/", "http://localhost:8500"),
        ("http://[::1]:8500", "http://[::1]:8500"),
    ],
)
def test_base_url_accepted(url, expected):
    assert normalize_base_url(url) == expected


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://sbx.sandbox.tensorlake.ai", "refusing to send the API key over plain http://"),
        ("http://10.1.2.3:8500", "refusing to send the API key over plain http://"),
        ("http://app.localhost:8500", "(http://127.0.0.1:PORT; also localhost or [::1], but no other name)"),
        ("ftp://host", "must start with https://"),
        ("sbx.sandbox.tensorlake.ai", "must start with https://"),
        ("https://", "no host"),
        ("https://user:pw@host.example", "user info"),
        ("https://host.example/?x=1", "query or fragment"),
        ("https://host.example/#frag", "query or fragment"),
        ("https://host.example\n", "whitespace or control"),
        ("https://host.example:99999", "invalid base_url"),
    ],
)
def test_base_url_rejected(url, why):
    with pytest.raises(ValueError) as info:
        normalize_base_url(url)
    assert why in str(info.value)
