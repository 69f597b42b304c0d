"""The public API of issue 23: the names it dropped say what replaces them, and the replacements
do the job (``write_stdin(..., close=True)``, ``StdinWriter(...)``, ``Terminal.open`` /
``Terminal.attach``, ``AsyncStdinWriter.aclose``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

import tensorlake_sandbox
from tensorlake_api_client.api.sandbox_processes import sandbox_process_get
from tensorlake_sandbox import (
    AsyncStdinWriter,
    SandboxClient,
    StdinWriter,
    Terminal,
    awrite_stdin,
    write_stdin,
)


@pytest.mark.parametrize(
    ("old", "named"),
    [
        ("open_terminal", "Terminal.open"),
        ("aattach_terminal", "AsyncTerminal.attach"),
        ("stdin_writer", "StdinWriter(client, pid"),
        ("close_stdin", "close=True"),
        ("aclose_stdin", "awrite_stdin"),
        ("sandbox_url", "sandbox_client(sandbox)"),
        ("error_for_status", "tensorlake_sandbox._errors"),
    ],
)
def test_a_dropped_name_says_what_replaces_it(old: str, named: str) -> None:
    with pytest.raises(ImportError, match="no longer public") as caught:
        exec(f"from tensorlake_sandbox import {old}", {})
    assert named in str(caught.value)
    with pytest.raises(ImportError) as again:
        getattr(tensorlake_sandbox, old)
    assert named in str(again.value)
    assert old not in tensorlake_sandbox.__all__ and old not in dir(tensorlake_sandbox)


def test_an_unknown_name_is_a_plain_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        tensorlake_sandbox.nonsense  # noqa: B018


def test_the_public_names_are_at_most_32() -> None:
    assert len(tensorlake_sandbox.__all__) <= 32


def _ended(client: SandboxClient, pid: int) -> str | None:
    end = time.monotonic() + 20
    while time.monotonic() < end:
        info = sandbox_process_get.sync(pid, client=client)
        if info.status != "running":
            return str(info.status)
        time.sleep(0.02)
    return None


def test_write_stdin_with_close_sends_eof_after_the_data(
    local_client: SandboxClient, start_process: Callable[..., Any]
) -> None:
    proc = start_process("cat", stdin="pipe")
    assert write_stdin(local_client, proc.pid, b"data", close=True) == 4
    assert _ended(local_client, proc.pid) is not None  # cat read EOF and exited


def test_close_must_be_a_bool(local_client: SandboxClient) -> None:
    with pytest.raises(TypeError, match="close must be True or False"):
        write_stdin(local_client, 1, b"x", close="yes")  # type: ignore[arg-type]


def test_awrite_stdin_with_close_and_the_writer_classes(
    local_client: SandboxClient, start_process: Callable[..., Any]
) -> None:
    first, second, third = (start_process("cat", stdin="pipe") for _ in range(3))

    async def scenario() -> None:
        assert await awrite_stdin(local_client, first.pid, b"", close=True) == 0
        async with AsyncStdinWriter(local_client, second.pid) as w:
            await w.write(b"x")
        w3 = AsyncStdinWriter(local_client, third.pid)
        await w3.close()  # the name of earlier versions still works
        assert w3.closed

    asyncio.run(scenario())
    with StdinWriter(local_client, start_process("cat", stdin="pipe").pid) as w:
        assert w.write("y") == 1
    for proc in (first, second, third):
        assert _ended(local_client, proc.pid) is not None


def test_terminal_open_and_attach(local_client: SandboxClient) -> None:
    with Terminal.open(local_client, "sh", ["-c", "read x; echo got $x; exit 4"]) as term:
        term.detach()
        again = Terminal.attach(local_client, term.session_id, term.token)
        with again:
            again.write("hi\n")
            assert b"got hi" in b"".join(again)
            assert again.returncode == 4
