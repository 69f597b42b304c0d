"""The async twins (`arun`, `astart`, `AsyncRemoteProcess`) against the local sandbox: the same
results as the sync layer, a dropped stream resumed, and cancellation that kills the remote process."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from tensorlake_sandbox import AsyncRemoteProcess, OutputLine, SandboxClient, arun, astart, sandbox_client
from tensorlake_sandbox._async._process import AsyncLineStream
from tensorlake_sandbox.local import LocalSandbox

from .servers.dropping_proxy import DroppingProxy
from .test_process import wait_gone


def in_loop(client: SandboxClient, fn: Callable[[], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        try:
            return await fn()
        finally:
            await client.aclose()

    return asyncio.run(main())


def test_arun_with_input_returns_code_stdout_and_stderr(local_client):
    r = in_loop(
        local_client, lambda: arun(local_client, ["sh", "-c", "cat; echo err >&2; exit 3"], input="hi\n")
    )
    assert (r.returncode, r.stdout, r.stderr) == (3, "hi\n", "err\n")


def test_arun_without_input_check_and_bytes(local_client):
    r = in_loop(
        local_client, lambda: arun(local_client, ["sh", "-c", "echo a; echo b >&2; exit 4"], text=False)
    )
    assert (r.returncode, r.stdout, r.stderr) == (4, b"a\n", b"b\n")
    with pytest.raises(subprocess.CalledProcessError) as info:
        in_loop(local_client, lambda: arun(local_client, ["sh", "-c", "exit 9"], check=True))
    assert info.value.returncode == 9


@pytest.mark.parametrize("with_input", [False, True], ids=["run-endpoint", "start-and-stdin"])
def test_arun_timeout_kills_the_whole_remote_tree_then_raises(local_client, with_input):
    script = "sleep 30 & echo $!; cat >/dev/null; wait"
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as info:
        in_loop(
            local_client,
            lambda: arun(local_client, ["sh", "-c", script], timeout=1, input="x" if with_input else None),
        )
    assert 0.9 < time.monotonic() - started < 8
    child = int(info.value.output.split()[0])
    assert wait_gone(child), f"the background sleep {child} survived the timeout"


def test_a_line_written_to_cat_shows_up_while_stdin_is_open(local_client):
    async def scenario() -> tuple[list[str], int | None]:
        got = []
        async with await astart(local_client, ["cat"]) as p:
            assert isinstance(p, AsyncRemoteProcess) and p.stdin is not None
            await p.stdin.write("hello\n")
            got.append(await anext(p.stdout))
            assert await p.poll() is None
            await p.stdin.close()
            got.extend([line async for line in p.stdout])
            await p.wait(10)
        return got, p.returncode

    assert in_loop(local_client, scenario) == (["hello\n"], 0)


def test_output_communicate_and_signals(local_client):
    async def scenario() -> None:
        async with await astart(local_client, ["sh", "-c", "echo one; echo two >&2"], stdin=False) as p:
            assert [x async for x in p.output] == [
                OutputLine("stdout", "one\n"),
                OutputLine("stderr", "two\n"),
            ]
        async with await astart(local_client, ["sh", "-c", "cat; echo e >&2"]) as p:
            assert await p.communicate("in\n", timeout=20) == ("in\n", "e\n")
        async with await astart(local_client, ["sleep", "30"], stdin=False) as p:
            with pytest.raises(subprocess.TimeoutExpired):
                await p.wait(0.2)
            await p.terminate()
            assert await p.wait(10) == -signal.SIGTERM

    in_loop(local_client, scenario)


def test_cancelling_arun_kills_the_remote_process(local_client):
    async def scenario() -> int:
        task = asyncio.ensure_future(arun(local_client, ["sh", "-c", "sleep 30 & echo $!; wait"]))
        # The task is cancelled once the process runs in the sandbox.
        from tensorlake_api_client.api.sandbox_processes import sandbox_process_list

        deadline = time.monotonic() + 20
        while True:
            procs = (await sandbox_process_list.asyncio(client=local_client)).processes
            mine = [p for p in procs if p.status == "running" and "sleep 30 & echo $!; wait" in p.args]
            if mine or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        assert len(mine) == 1
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return mine[0].pid

    pid = in_loop(local_client, scenario)
    assert wait_gone(pid)


def test_async_context_manager_kills_at_once_on_an_exception(local_client):
    async def scenario() -> int:
        with pytest.raises(RuntimeError):
            async with await astart(local_client, ["sleep", "30"]) as p:
                raise RuntimeError("boom")
        return p.pid

    assert wait_gone(in_loop(local_client, scenario))


@pytest.fixture
def proxy(local_sandbox: LocalSandbox) -> Iterator[DroppingProxy]:
    port = int(local_sandbox.base_url.rsplit(":", 1)[1])
    with DroppingProxy(upstream_port=port) as p:
        yield p


def test_a_dropped_async_stream_resumes_without_repeating_or_losing_lines(local_sandbox, local_client, proxy):
    proxy.cuts = [3, 4, 1]
    client = sandbox_client(base_url=proxy.base_url, api_key=local_sandbox.token)

    async def scenario() -> list[str]:
        try:
            async with await astart(local_client, ["seq", "1", "20"], stdin=False) as p:
                await p.wait(10)
                return [line async for line in AsyncLineStream[str](client, p.pid, "stdout")]
        finally:
            await local_client.aclose()

    assert in_loop(client, scenario) == [str(i) for i in range(1, 21)]
    assert proxy.streams_cut == 3
