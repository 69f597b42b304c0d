"""A sandbox reached through an HTTP proxy: every connection kind tunnels, and the proxy learns nothing.

A real sandbox is ``https://<id>.sandbox.tensorlake.ai``; behind a corporate proxy the client
must open a tunnel with ``CONNECT host:443`` and speak TLS inside it, so the proxy never sees
the bearer key. Here the sandbox is the full local sandbox app served over TLS on 127.0.0.1,
under the name ``sandbox.test`` (a reserved name that resolves nowhere): only the proxy
(tests/servers/proxy.py) maps it to 127.0.0.1, so a request reaches the sandbox through the
proxy or not at all. Every connection kind is checked this way: REST (generated calls and
stdin writes, small and multi-MiB), SSE (`run`, a started process's output), the terminal's
websocket, sync and async, and the CLI; then proxy credentials, a proxy that refuses the
tunnel (407, 403, 502, a closed or silent connection), the forms of the 200 that opens one,
certificate checks inside the tunnel, which variables apply (``HTTPS_PROXY``, ``ALL_PROXY``,
``NO_PROXY``; not ``HTTP_PROXY``) and keep-alive of a tunnel. The proxy records what it could
read; the sandbox records what reached it. Every call is bounded (`_bounded`): one that hangs
is reported as such instead of hanging the test.

Two of these failed while httpx's own transport carried proxied requests, and pass since the
engine opens the tunnel itself: a refused tunnel says nothing was sent (it was
``may_have_been_sent=True``, and a stdin write became `DeliveryUnknownError`), and `run` /
`arun` give up on a proxy that never answers the CONNECT (they waited forever).

The client is configured both ways a user can: from the environment (``HTTPS_PROXY``,
``SSL_CERT_FILE``) and from ``httpx_args`` (``proxy=``, ``verify=``).

Name resolution is guarded for the whole module: names under ``.test`` must never be looked
up (the machine's resolver is not on loopback, and the network rule is loopback only), so
``socket.getaddrinfo`` refuses them here and records that it was asked: a client that
resolved the sandbox's name itself did not go through the proxy.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from tensorlake_api_client.api.sandbox_processes import sandbox_process_list
from tensorlake_sandbox import (
    AsyncTerminal,
    DeliveryUnknownError,
    RetryPolicy,
    SandboxClient,
    SandboxConnectionError,
    SandboxTimeoutError,
    Terminal,
    arun,
    astart,
    awrite_stdin,
    run,
    sandbox_client,
    start,
    write_stdin,
)
from tensorlake_sandbox.local import create_app
from tensorlake_sandbox.local._runner import ServerThread, bind
from tests.closing import close_after_test, close_all
from tests.servers.certs import certificates
from tests.servers.proxy import ConnectProxy

NAME = "sandbox.test"
KEY = "proxy-test-key-5b1c0e7a9d"
PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
NO_PROXY_VARS = ("NO_PROXY", "no_proxy")
BIG = 3 << 20  # a multi-MiB stdin body: more than one 2 MiB request
FAST = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02)

pytestmark = pytest.mark.timeout(60)


Headers = list[tuple[str, str]]


class TLSSandbox:
    """The local sandbox app (`create_app`, public) served by uvicorn over TLS on 127.0.0.1.

    ``requests`` records the path and headers of every request (and websocket) that reached it.
    """

    def __init__(self, where: Path) -> None:
        self.ca, cert, key = certificates(where, f"DNS:{NAME}")
        self.app = create_app(token=KEY, allowed_hosts=frozenset({NAME}), stop_grace=0.5, pty_kill_grace=0.2)
        self.requests: list[tuple[str, Headers]] = []
        self.websockets: list[str] = []  # the paths of the websockets among them
        config = uvicorn.Config(
            self._recording,
            interface="asgi3",
            ssl_certfile=str(cert),
            ssl_keyfile=str(key),
            ws="wsproto",
            log_level="warning",
            timeout_graceful_shutdown=1,
        )
        self.sock = bind("127.0.0.1", 0)
        self.port: int = self.sock.getsockname()[1]
        self.server = ServerThread(config, self.sock, name="tls-sandbox")
        self.server.start()

    async def _recording(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
            self.requests.append((scope["path"], headers))
            if scope["type"] == "websocket":
                self.websockets.append(scope["path"])
        await self.app(scope, receive, send)

    @property
    def base_url(self) -> str:
        return f"https://{NAME}:{self.port}"

    def trust(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TLSSandbox]:
    sandbox = TLSSandbox(tmp_path_factory.mktemp("tls"))
    yield sandbox
    sandbox.server.stop(15)


@pytest.fixture
def tls_sandbox(tls_server: TLSSandbox) -> TLSSandbox:
    """The module's TLS sandbox, its record of requests emptied for this test."""
    tls_server.requests.clear()
    tls_server.websockets.clear()
    return tls_server


@pytest.fixture(autouse=True)
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Refuse to resolve ``sandbox.test`` (no DNS query may leave the machine); record each attempt."""
    asked: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name.lower().rstrip(".").endswith(".test"):
            asked.append(name)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (*PROXY_VARS, *NO_PROXY_VARS):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def make_proxy() -> Iterator[Callable[..., ConnectProxy]]:
    proxies: list[ConnectProxy] = []

    def make(names: dict[str, str] | None = None, **kwargs: Any) -> ConnectProxy:
        proxy = ConnectProxy(names={NAME: "127.0.0.1", **(names or {})}, **kwargs).start()
        proxies.append(proxy)
        return proxy

    yield make
    close_all()  # the test's clients first, then their proxies
    for p in proxies:
        p.stop()


Via = Callable[[str], SandboxClient]


@pytest.fixture(params=["env", "httpx_args"])
def via(request: pytest.FixtureRequest, clean_env: pytest.MonkeyPatch, tls_sandbox: TLSSandbox) -> Via:
    """A client for the TLS sandbox through ``proxy``: from HTTPS_PROXY and SSL_CERT_FILE, or
    from ``httpx_args`` (``proxy=``, ``verify=``)."""

    def make(proxy_url: str) -> SandboxClient:
        if request.param == "env":
            clean_env.setenv("HTTPS_PROXY", proxy_url)
            clean_env.setenv("SSL_CERT_FILE", str(tls_sandbox.ca))
            client = sandbox_client(base_url=tls_sandbox.base_url, api_key=KEY, timeout=10)
        else:
            args = {"proxy": proxy_url, "verify": tls_sandbox.trust()}
            client = sandbox_client(base_url=tls_sandbox.base_url, api_key=KEY, timeout=10, httpx_args=args)
        close_after_test(client)
        return client

    return make


def _assert_tunnelled_only(proxy: ConnectProxy, sandbox: TLSSandbox) -> None:
    """Every connection to the proxy was one CONNECT to sandbox.test, answered 200; the proxy saw
    neither the key nor an Authorization header, and the sandbox no proxy credentials."""
    assert proxy.tunnels, "nothing went through the proxy"
    for tunnel in proxy.tunnels:
        assert tunnel.request_line == f"CONNECT {NAME}:{sandbox.port} HTTP/1.1"
        assert tunnel.status == 200
        assert tunnel.header("Authorization") == []
        assert KEY.encode() not in tunnel.seen
        assert b"Bearer" not in tunnel.seen
    assert sandbox.requests, "nothing reached the sandbox"
    for path, headers in sandbox.requests:
        names = [k for k, _ in headers]
        assert "proxy-authorization" not in names, path
        assert [v for k, v in headers if k == "host"] == [f"{NAME}:{sandbox.port}"], path
    assert any(("authorization", f"Bearer {KEY}") in headers for _, headers in sandbox.requests)


def test_rest_calls_and_stdin_writes_tunnel_through_the_proxy(via, make_proxy, tls_sandbox, lookups):
    proxy = make_proxy()
    client = via(proxy.url)
    assert isinstance(sandbox_process_list.sync(client=client).processes, list)
    proc = start(client, ["sh", "-c", "wc -c"], stdin=True)
    data = os.urandom(BIG)
    assert write_stdin(client, proc.pid, b"small\n") == 6
    assert write_stdin(client, proc.pid, data, close=True) == BIG
    assert [line.strip() for line in proc.stdout] == [str(BIG + 6)]
    assert proc.wait(10) == 0

    async def main() -> None:
        try:
            aproc = await astart(client, ["sh", "-c", "wc -c"], stdin=True)
            assert await awrite_stdin(client, aproc.pid, b"small\n") == 6
            assert await awrite_stdin(client, aproc.pid, data, close=True) == BIG
            assert [line.strip() async for line in aproc.stdout] == [str(BIG + 6)]
            assert await aproc.wait(10) == 0
        finally:
            await client.aclose()

    asyncio.run(main())
    _assert_tunnelled_only(proxy, tls_sandbox)
    assert sum(len(t.upstream) for t in proxy.tunnels) > 2 * BIG  # the bodies went through it
    assert lookups == []


def test_sse_output_streams_tunnel_through_the_proxy(via, make_proxy, tls_sandbox, lookups):
    """`run` (POST /processes/run, streamed) and a started process's followed output, sync and async."""
    proxy = make_proxy()
    client = via(proxy.url)
    done = run(client, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (done.returncode, done.stdout, done.stderr) == (3, "out\n", "err\n")
    proc = start(client, ["sh", "-c", "for i in 1 2 3; do echo line-$i; done"], stdin=False)
    assert list(proc.stdout) == ["line-1\n", "line-2\n", "line-3\n"]
    assert proc.wait(10) == 0

    async def main() -> None:
        try:
            adone = await arun(client, ["echo", "async run"])
            assert (adone.returncode, adone.stdout) == (0, "async run\n")
            aproc = await astart(client, ["sh", "-c", "echo a; echo b"], stdin=False)
            assert [line async for line in aproc.stdout] == ["a\n", "b\n"]
            assert await aproc.wait(10) == 0
        finally:
            await client.aclose()

    asyncio.run(main())
    _assert_tunnelled_only(proxy, tls_sandbox)
    assert lookups == []


def _read_all(term: Terminal) -> bytes:
    out = b""
    for chunk in term:
        out += chunk
    return out


def test_a_terminal_websocket_tunnels_through_the_proxy(via, make_proxy, tls_sandbox, lookups):
    """The terminal's websocket (sync and async): input goes in, output and exit status come back,
    and the proxy sees neither the key nor the session's token."""
    proxy = make_proxy()
    client = via(proxy.url)
    script = ["-c", "read x; echo got-$x; exit 5"]
    tokens: list[str] = []
    with Terminal.open(client, "sh", script) as term:
        tokens.append(term.token)
        term.write(b"sync\n")
        assert b"got-sync" in _read_all(term)
        assert term.wait(10) == 5

    async def main() -> None:
        try:
            async with await AsyncTerminal.open(client, "sh", script) as aterm:
                tokens.append(aterm.token)
                await aterm.write(b"async\n")
                out = b"".join([chunk async for chunk in aterm])
                assert b"got-async" in out
                assert await aterm.wait(10) == 5
        finally:
            await client.aclose()

    asyncio.run(main())
    assert len(tls_sandbox.websockets) == 2
    _assert_tunnelled_only(proxy, tls_sandbox)
    for token in tokens:
        assert token and all(token.encode() not in t.seen for t in proxy.tunnels)
    assert lookups == []


HUNG = "still running at its deadline"


def _bounded(call: Callable[[], object], seconds: float) -> BaseException | str | None:
    """What ``call()`` raised (None: nothing), or HUNG if it had not returned within ``seconds``.

    It runs in a daemon thread: one that hangs is left blocked on its socket until the test's
    proxy stops (which shuts the socket down), without holding up the test.
    """
    box: list[BaseException | None] = []

    def target() -> None:
        try:
            call()
            box.append(None)
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=target, name="proxy-test-call", daemon=True)
    thread.start()
    thread.join(seconds)
    return box[0] if box else HUNG


def _kinds(client: SandboxClient, marker: str) -> dict[str, Callable[[], object]]:
    """One call of every connection kind the package opens, sync and async (each async one in its
    own event loop, closing the client's async connections after it)."""

    def in_loop(make: Callable[[], Any]) -> Callable[[], object]:
        async def main() -> None:
            try:
                await make()
            finally:
                await client.aclose()

        return lambda: asyncio.run(main())

    async def aterminal() -> None:
        await (await AsyncTerminal.open(client, "echo", [marker])).aclose()

    async def astarted() -> None:
        await (await astart(client, ["echo", marker])).wait(10)

    return {
        "rest": lambda: sandbox_process_list.sync(client=client),
        "write": lambda: write_stdin(client, 1, marker.encode(), retry=FAST),
        "run": lambda: run(client, ["echo", marker]),
        "start": lambda: start(client, ["echo", marker]).wait(10),
        "terminal": lambda: Terminal.open(client, "echo", [marker]).close(),
        "arest": in_loop(lambda: sandbox_process_list.asyncio(client=client)),
        "awrite": in_loop(lambda: awrite_stdin(client, 1, marker.encode(), retry=FAST)),
        "arun": in_loop(lambda: arun(client, ["echo", marker])),
        "astart": in_loop(astarted),
        "aterminal": in_loop(aterminal),
    }


KINDS = ("rest", "write", "run", "start", "terminal", "arest", "awrite", "arun", "astart", "aterminal")


def _each_kind(
    client: SandboxClient, marker: str, seconds: float = 15
) -> dict[str, BaseException | str | None]:
    """One call of every kind, in turn: what each raised (None: nothing; HUNG: past ``seconds``)."""
    return {kind: _bounded(call, seconds) for kind, call in _kinds(client, marker).items()}


def _all_reached_the_sandbox(outcome: dict[str, BaseException | str | None]) -> None:
    """Every kind succeeded; the writes to pid 1 (no such process) were answered 404 by the sandbox."""
    assert {k: type(v).__name__ if v else None for k, v in outcome.items()} == {
        **dict.fromkeys(KINDS),
        "write": "ProcessNotFoundError",
        "awrite": "ProcessNotFoundError",
    }


def test_proxy_credentials_in_the_proxy_url_go_on_every_connect(via, make_proxy, tls_sandbox, lookups):
    """``http://user:pass@proxy`` sends ``Proxy-Authorization: Basic`` on each CONNECT, for every kind."""
    proxy = make_proxy(auth="proxy-user:proxy-pass")
    client = via(f"http://proxy-user:proxy-pass@127.0.0.1:{proxy.port}")
    _all_reached_the_sandbox(_each_kind(client, "with-credentials"))
    _assert_tunnelled_only(proxy, tls_sandbox)
    assert [t.header("Proxy-Authorization") for t in proxy.tunnels] == [
        ["Basic cHJveHktdXNlcjpwcm94eS1wYXNz"]
    ] * len(proxy.tunnels)
    assert lookups == []


def test_without_proxy_credentials_the_407_is_a_connection_error_and_nothing_is_delivered(
    via, make_proxy, tls_sandbox, lookups
):
    """A proxy that wants credentials the client lacks: every kind raises a `SandboxConnectionError`
    (the sandbox never answered: not a status error) that names the 407."""
    proxy = make_proxy(auth="proxy-user:proxy-pass")
    marker = "no-credentials-7f3a"
    outcome = _each_kind(via(proxy.url), marker)
    for kind, error in outcome.items():
        if isinstance(error, DeliveryUnknownError):  # a write: what the connection error was
            error = error.__cause__
        assert isinstance(error, SandboxConnectionError), (kind, error)
        assert "407" in str(error), (kind, str(error))
    assert {t.status for t in proxy.tunnels} == {407}
    assert all(not t.upstream and not t.downstream for t in proxy.tunnels)
    assert tls_sandbox.requests == []
    assert lookups == []


@pytest.mark.parametrize("status", [502, 403, "close"])
def test_a_proxy_that_refuses_the_tunnel_is_an_error_and_nothing_is_delivered(
    via, make_proxy, tls_sandbox, lookups, status
):
    """A proxy that answers the CONNECT with an error page (502, 403), or closes the connection
    without an answer: every kind raises a `SandboxConnectionError` (naming the status)."""
    proxy = make_proxy(refuse=status)
    marker = f"refused-{status}-c41d"
    outcome = _each_kind(via(proxy.url), marker)
    for kind, error in outcome.items():
        if isinstance(error, DeliveryUnknownError):
            error = error.__cause__
        assert isinstance(error, SandboxConnectionError), (kind, error)
        if status != "close":
            assert str(status) in str(error), (kind, str(error))
    assert {t.status for t in proxy.tunnels} == {0 if status == "close" else status}
    assert all(t.request_line == f"CONNECT {NAME}:{tls_sandbox.port} HTTP/1.1" for t in proxy.tunnels)
    assert all(not t.upstream and not t.downstream for t in proxy.tunnels)
    assert tls_sandbox.requests == []
    assert lookups == []


@pytest.mark.parametrize("refusal", ["407", "502", "close"])
def test_a_refused_tunnel_says_nothing_was_sent(via, make_proxy, refusal):
    """Nothing reaches the sandbox before its tunnel is open: a refused CONNECT is a
    `SandboxConnectionError` with ``may_have_been_sent`` False, and a stdin write says so too
    (not `DeliveryUnknownError`); the message gives the proxy's answer."""
    if refusal == "407":
        proxy = make_proxy(auth="proxy-user:proxy-pass")
    else:
        proxy = make_proxy(refuse=502 if refusal == "502" else "close")
    outcome = _each_kind(via(proxy.url), f"refused-{refusal}")
    assert {
        k: (type(v), getattr(v, "may_have_been_sent", None)) for k, v in outcome.items()
    } == dict.fromkeys(KINDS, (SandboxConnectionError, False))
    if refusal != "close":  # the proxy's own answer is in the message, not a TLS error after it
        assert all(f"proxy refused a tunnel to {NAME}:" in str(v) for v in outcome.values()), outcome
        assert all(refusal in str(v) for v in outcome.values()), outcome


def test_no_proxy_naming_the_sandbox_bypasses_the_proxy(clean_env, make_proxy, tls_sandbox, lookups):
    """With ``NO_PROXY=sandbox.test`` every kind connects directly: here that means looking the name
    up (refused by this module's guard, so no query leaves the machine), and the proxy sees nothing."""
    proxy = make_proxy()
    clean_env.setenv("HTTPS_PROXY", proxy.url)
    clean_env.setenv("NO_PROXY", f"example.invalid,{NAME}")
    clean_env.setenv("SSL_CERT_FILE", str(tls_sandbox.ca))
    client = sandbox_client(base_url=tls_sandbox.base_url, api_key=KEY, timeout=10)
    close_after_test(client)
    outcome = _each_kind(client, "bypassed")
    for kind, error in outcome.items():
        if isinstance(error, DeliveryUnknownError):
            error = error.__cause__
        assert isinstance(error, SandboxConnectionError), (kind, error)
        assert error.may_have_been_sent is False, kind
    assert proxy.tunnels == []
    assert tls_sandbox.requests == []
    assert set(lookups) == {NAME}


def test_the_cli_tunnels_through_the_proxy(clean_env, make_proxy, tls_sandbox, lookups, cli_main):
    """`tensorlake-sandbox exec` and `ps` (the same main() as the installed command) through
    HTTPS_PROXY: stdin in, output and exit status back, nothing readable by the proxy."""
    proxy = make_proxy()
    clean_env.setenv("HTTPS_PROXY", proxy.url)
    clean_env.setenv("SSL_CERT_FILE", str(tls_sandbox.ca))
    env = {"TENSORLAKE_API_KEY": KEY}
    done = cli_main(["exec", tls_sandbox.base_url, "--", "sh", "-c", "cat; exit 3"], env, input=b"piped\n")
    assert (done.returncode, done.stdout, done.stderr) == (3, b"piped\n", b"")
    assert cli_main(["ps", tls_sandbox.base_url], env).returncode == 0
    _assert_tunnelled_only(proxy, tls_sandbox)
    assert lookups == []


@pytest.mark.parametrize("case", ["untrusted CA", "another name"])
def test_inside_the_tunnel_the_sandbox_certificate_is_still_verified(make_proxy, tls_sandbox, lookups, case):
    """A tunnel does not weaken TLS: a certificate from a CA the client does not trust, or one
    for another name than the sandbox's, fails every kind before anything is sent."""
    proxy = make_proxy(
        names={"other.test": "127.0.0.1"}
    )  # the same server, under a name its certificate lacks
    if case == "untrusted CA":
        host, verify = NAME, ssl.create_default_context()  # the system's store, without the test CA
    else:
        host, verify = "other.test", tls_sandbox.trust()
    client = sandbox_client(
        base_url=f"https://{host}:{tls_sandbox.port}",
        api_key=KEY,
        timeout=10,
        httpx_args={"proxy": proxy.url, "verify": verify},
    )
    close_after_test(client)
    outcome = _each_kind(client, f"unverified-{case}")
    for kind, error in outcome.items():
        assert isinstance(error, SandboxConnectionError), (kind, error)
        assert "certificate" in str(error).lower(), (kind, str(error))
        assert error.may_have_been_sent is False, kind
    assert {t.request_line for t in proxy.tunnels} == {f"CONNECT {host}:{tls_sandbox.port} HTTP/1.1"}
    assert all(KEY.encode() not in t.seen for t in proxy.tunnels)
    assert tls_sandbox.requests == []
    assert lookups == []


@pytest.mark.parametrize("variable", ["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY"])
def test_https_proxy_and_all_proxy_route_an_https_sandbox_and_http_proxy_does_not(
    clean_env, make_proxy, tls_sandbox, lookups, variable
):
    """HTTPS_PROXY and ALL_PROXY (either case) send an https sandbox through the proxy; HTTP_PROXY
    is for http:// URLs only (as in curl, requests, httpx), so the client connects directly."""
    proxy = make_proxy()
    clean_env.setenv(variable, proxy.url)
    clean_env.setenv("SSL_CERT_FILE", str(tls_sandbox.ca))
    client = sandbox_client(base_url=tls_sandbox.base_url, api_key=KEY, timeout=10)
    close_after_test(client)
    if variable == "HTTP_PROXY":
        with pytest.raises(SandboxConnectionError):
            sandbox_process_list.sync(client=client)
        assert (proxy.tunnels, lookups) == ([], [NAME])
    else:
        assert isinstance(sandbox_process_list.sync(client=client).processes, list)
        _assert_tunnelled_only(proxy, tls_sandbox)
        assert lookups == []


def test_a_tunnel_is_kept_alive_for_the_next_requests(via, make_proxy, tls_sandbox):
    """Sequential calls reuse their tunnel: one CONNECT (and one TLS handshake) for the sync
    calls and one for the async ones, not one per request."""
    proxy = make_proxy()
    client = via(proxy.url)
    for _ in range(5):
        sandbox_process_list.sync(client=client)

    async def main() -> None:
        try:
            for _ in range(5):
                await sandbox_process_list.asyncio(client=client)
        finally:
            await client.aclose()

    asyncio.run(main())
    assert len(tls_sandbox.requests) == 10
    assert len(proxy.tunnels) == 2
    _assert_tunnelled_only(proxy, tls_sandbox)


@pytest.mark.parametrize("kind", KINDS)
def test_a_proxy_that_never_answers_the_connect_times_out(make_proxy, tls_sandbox, kind):
    """Every kind gives up on a silent proxy within the client's timeout (0.3 s here; a 2 s
    deadline), with a `SandboxTimeoutError`: none waits forever for the tunnel."""
    proxy = make_proxy(refuse="silence")
    client = sandbox_client(
        base_url=tls_sandbox.base_url,
        api_key=KEY,
        timeout=0.3,
        httpx_args={"proxy": proxy.url, "verify": tls_sandbox.trust()},
    )
    close_after_test(client)
    error = _bounded(_kinds(client, "silent")[kind], 2)
    if isinstance(error, DeliveryUnknownError):
        error = error.__cause__
    assert isinstance(error, SandboxTimeoutError), error
    assert proxy.connects == [f"CONNECT {NAME}:{tls_sandbox.port} HTTP/1.1"] * len(proxy.connects)
    assert tls_sandbox.requests == []


@pytest.mark.parametrize(
    ("established", "trickle"),
    [
        (b"HTTP/1.0 200 Connection established\r\n\r\n", False),
        (b"HTTP/1.1 200 OK\r\nProxy-Agent: test-proxy/1.0\r\nVia: 1.1 test-proxy\r\n\r\n", False),
        (b"HTTP/1.1 200 Connection established\r\nProxy-Agent: test-proxy/1.0\r\n\r\n", True),
    ],
    ids=["http-1.0", "with-headers", "one-byte-at-a-time"],
)
def test_the_answers_that_open_a_tunnel(make_proxy, tls_sandbox, lookups, established, trickle):
    """A tunnel opens whatever form the proxy's 200 takes: HTTP/1.0, with headers, or sent one
    byte per packet; the TLS that follows starts right after its blank line."""
    proxy = make_proxy(established=established, trickle=trickle)
    client = sandbox_client(
        base_url=tls_sandbox.base_url,
        api_key=KEY,
        timeout=10,
        httpx_args={"proxy": proxy.url, "verify": tls_sandbox.trust()},
    )
    close_after_test(client)
    _all_reached_the_sandbox(_each_kind(client, "answers"))
    _assert_tunnelled_only(proxy, tls_sandbox)
    assert lookups == []
