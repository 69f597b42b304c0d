"""Every code block of README.md runs, so that no example can rot.

Blocks are found automatically (a new one is covered, or fails, without editing this file):

- ```python blocks run in order in one namespace (a later block may use what an earlier one
  imported, as a reader would), against the session's local sandbox.
- ```sh blocks run line by line (each line is its own example) in bash, with the real
  `tensorlake-sandbox` command, against the same local sandbox.
- Blocks that cannot run here are listed in ``NOT_RUN`` with the reason; an entry that no
  longer matches a block fails the test, so the list cannot go stale.

Placeholders are replaced explicitly and minimally (``PYTHON_SUBSTITUTIONS``,
``SHELL_SUBSTITUTIONS``): the sandbox name or URL becomes the local sandbox's URL with its
token, and the example PID 42 becomes a live process (``wc -c`` reading a stdin pipe),
started fresh for each python block and each shell line. Names a block uses without
defining them (``pid``, ``data``, ``token``, ...) are given in ``GIVEN_NAMES``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tensorlake_api_client.api.sandbox_processes import (
    sandbox_process_get,
    sandbox_process_kill,
    sandbox_process_list,
    sandbox_process_stdout,
)
from tensorlake_sandbox import SandboxClient
from tensorlake_sandbox._sync._stdin import close_stdin
from tensorlake_sandbox.local import LocalSandbox

README = Path(__file__).resolve().parent.parent / "README.md"
BIN = Path(sys.executable).parent

# Blocks that are not run, found by a snippet of their text, with the reason.
NOT_RUN: dict[str, str] = {
    "tensorlake-sandbox shell my-sandbox --attach SESSION_ID": "interactive terminals need a terminal: "
    "tests/test_cli_shell.py runs shell and exec -t on a pseudo-terminal",
    "make demo": "`make test` would run this suite inside itself, and both run `make setup` (uv sync, "
    "which rewrites .venv under the running tests); the demo itself runs in tests/test_demo.py",
    "pip install": "installs from the package registry into the environment (what `make setup` does "
    "here); where a block also starts `tensorlake-sandbox local`, that command runs from another block",
    "_transports/          the one client factory": "a picture of the package's layout; "
    "tests/test_layout.py checks what it shows",
    "make generate": "rewrites generated/ in the working tree; tests/test_generated_is_fresh.py runs "
    "the same generation into a temporary folder",
}


@dataclass(frozen=True)
class Block:
    number: int
    language: str
    line: int  # of the opening fence, 1-based
    heading: str
    code: str

    def __str__(self) -> str:
        first = next((ln for ln in self.code.splitlines() if ln.strip()), "")
        where = f"{self.language}, line {self.line}, under {self.heading!r}"
        return f"README block #{self.number} ({where}: {first!r})"


def readme_blocks() -> list[Block]:
    text = README.read_text()
    blocks: list[Block] = []
    heading = "(top)"
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            heading = line.strip("# \n")
        fence = re.match(r"^(```+|~~~+)\s*([\w+-]*)", line)
        if fence:
            start, marker, body = i, fence.group(1), []
            i += 1
            while i < len(lines) and not lines[i].startswith(marker):
                body.append(lines[i])
                i += 1
            blocks.append(
                Block(len(blocks) + 1, fence.group(2) or "(none)", start + 1, heading, "".join(body))
            )
        i += 1
    return blocks


BLOCKS = readme_blocks()
PYTHON = [b for b in BLOCKS if b.language == "python"]
SHELL = [b for b in BLOCKS if b.language in ("sh", "bash", "shell", "console")]


def not_run_reason(block: Block) -> str | None:
    return next((reason for snippet, reason in NOT_RUN.items() if snippet in block.code), None)


def test_every_block_is_run_or_excused() -> None:
    unknown = [str(b) for b in BLOCKS if b not in PYTHON and b not in SHELL and not not_run_reason(b)]
    assert not unknown, f"blocks in a language this test cannot run; run them or add to NOT_RUN: {unknown}"
    stale = [s for s in NOT_RUN if not any(s in b.code for b in BLOCKS)]
    assert not stale, f"NOT_RUN entries that match no README block any more: {stale}"
    assert PYTHON and SHELL, "the README lost all its python or shell examples?"


# -- the local sandbox and the processes examples write to -----------------------------------------


@pytest.fixture
def fresh_process(local_client: SandboxClient, start_process: Callable[..., Any]) -> Callable[[], int]:
    """Start `wc -c` with a stdin pipe: a process an example may write to, close or kill."""

    def start() -> int:
        pid: int = start_process("wc", "-c", stdin="pipe").pid
        return pid

    return start


def byte_count_read(local_client: SandboxClient, pid: int) -> int | None:
    """Close the process's stdin if still open; what `wc -c` counted (None if it was killed)."""
    info = sandbox_process_get.sync(pid, client=local_client)
    if info.status == "running" and info.stdin_writable:
        close_stdin(local_client, pid)
    deadline = time.monotonic() + 10
    while (info := sandbox_process_get.sync(pid, client=local_client)).status == "running":
        assert time.monotonic() < deadline, f"process {pid} still running"
        time.sleep(0.02)
    if info.exit_code != 0:
        return None
    lines = sandbox_process_stdout.sync(pid, client=local_client).lines
    return int(lines[0].strip())


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The examples' working directory, with the files they name."""
    (tmp_path / "big.jsonl").write_bytes(b"".join(b'{"n": %d}\n' % i for i in range(1000)))
    (tmp_path / "big.bin").write_bytes(os.urandom(100_000))
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- python blocks ---------------------------------------------------------------------------------


def python_substitutions(sandbox: LocalSandbox, pid: int) -> list[tuple[str, str]]:
    """(placeholder, replacement): every one must occur in some python block."""
    local = f"base_url={sandbox.base_url!r}, api_key={sandbox.token!r}"
    return [
        ('sandbox_client("my-sandbox")', f"sandbox_client({local})"),
        ('"http://127.0.0.1:8500"', repr(sandbox.base_url)),
        ('"dev-token"', repr(sandbox.token)),
        # The example PID, as a call's first argument.
        ("(\n        42,", f"(\n        {pid},"),
        ("(42,", f"({pid},"),
        # Port 8500 may be taken on a shared machine: a free port instead.
        ("LocalSandbox()", "LocalSandbox(port=0)"),
    ]


def given_names(sandbox: LocalSandbox, pid: int) -> dict[str, Any]:
    """Names the examples use without defining them (a block that defines one overrides it)."""
    return {
        # An earlier block may have closed its client (`with sandbox_client(...) as client:`).
        "client": sandbox.client(),
        "pid": pid,
        "token": sandbox.token,
        "sandbox_ingress_endpoint": sandbox.base_url,
        "data": b"example data\n" * 100,
    }


def test_python_blocks_run_against_the_local_sandbox(
    local_sandbox: LocalSandbox,
    local_client: SandboxClient,
    fresh_process: Callable[[], int],
    workdir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `sandbox_client("my-sandbox")` reads the key from the environment.
    monkeypatch.setenv("TENSORLAKE_API_KEY", local_sandbox.token)
    namespace: dict[str, Any] = {"__name__": "readme"}
    used: set[str] = set()
    counts: dict[int, int | None] = {}
    clients: list[SandboxClient] = []
    for block in PYTHON:
        if not_run_reason(block):
            continue
        pid = fresh_process()
        code = block.code
        for placeholder, replacement in python_substitutions(local_sandbox, pid):
            if placeholder in code:
                used.add(placeholder)
                code = code.replace(placeholder, replacement)
        namespace.update(given_names(local_sandbox, pid))
        try:
            exec(compile(code, f"<{block}>", "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"{block} raised {type(exc).__name__}: {exc}\n--- as run:\n{code}")
        counts[block.number] = byte_count_read(local_client, pid)
        clients += [
            v for v in namespace.values() if isinstance(v, SandboxClient) and all(v is not c for c in clients)
        ]
    # The examples leave clients open, as a short script may: close them here.
    for client in clients:
        client.close()
    unused = {p for p, _ in python_substitutions(local_sandbox, 0)} - used
    assert not unused, f"substitutions that match no python block any more: {unused}"


# -- shell blocks ----------------------------------------------------------------------------------


def shell_substitutions(sandbox: LocalSandbox, pid: int) -> list[tuple[str, str]]:
    return [
        (" my-sandbox ", f" {sandbox.base_url} "),
        ("http://127.0.0.1:8500", sandbox.base_url),
        ("dev-token", sandbox.token),
        (" 42 ", f" {pid} "),
        ("TENSORLAKE_API_KEY=...", f"TENSORLAKE_API_KEY={sandbox.token}"),
        # Port 8500 may be taken on a shared machine: a free port instead.
        ("--port 8500", "--port 0"),
        # The example workload of `run` is the reader's own test suite: a command that exists here.
        ("-- make test", "-- sh -c 'echo tests pass'"),
        # Scripts run with -e: a documented non-zero status is printed rather than stopping them.
        ("; echo $?", " || echo $?"),
    ]


def fill_brackets(command: str) -> str:
    """Optional arguments shown in brackets are given; of alternatives, the first:
    ``[--signal TERM]`` -> ``--signal TERM``, ``[--stderr | --output]`` -> ``--stderr``."""
    return re.sub(r"\[([^]|]+)(\|[^]]*)?\]", lambda m: m.group(1).strip(), command)


# Lines that start a server: run until they print their URL, then stopped with SIGTERM.
SERVER_LINE = re.compile(r"(^|\s)tensorlake-sandbox local\b")


def shell_lines(block: Block) -> Iterator[tuple[str, int]]:
    """Each command line, without its comment, with the exit status its comment promises."""
    for raw in block.code.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        command, _, comment = line.partition("  #")
        exits = re.search(r"\bexits (\d+)", comment)
        yield command.strip(), int(exits.group(1)) if exits else 0


def run_server_line(words: list[str], env: dict[str, str], cwd: Path) -> str:
    command = shlex.join(words)
    if "--port" not in words:
        words = [*words, "--port", "0"]  # 8500 may be taken on a shared machine
    proc = subprocess.Popen(words, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        printed = b""
        deadline = time.monotonic() + 30
        while not (url := re.search(rb"http://127\.0\.0\.1:\d+", printed)):
            chunk = proc.stdout.readline()
            assert chunk and time.monotonic() < deadline, f"{command!r} printed no URL: {printed!r}"
            printed += chunk
        # Serving (any answer, 401 without the token) before it is stopped.
        while True:
            try:
                httpx.get(url.group().decode() + "/api/v1/processes", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"{command!r} printed its URL but does not answer"
                time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal once it has shut down: "killed by SIGTERM" is a clean stop.
        assert proc.wait(30) in (0, -signal.SIGTERM), f"{command!r} did not stop cleanly on SIGTERM"
        return printed.decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def is_command_list(block: Block) -> bool:
    """A block naming the example PID 42 is a list of independent commands (each line its own
    example, on its own fresh process); any other block is one script, run whole."""
    return re.search(r"\b42\b", block.code) is not None


def split_assignments(command: str, env: dict[str, str]) -> list[str]:
    """``NAME=value cmd ...`` -> ``[cmd, ...]`` with NAME set in ``env``."""
    words = shlex.split(command, comments=True)
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    return words


def running_pids(local_client: SandboxClient) -> set[int]:
    listed = sandbox_process_list.sync(client=local_client)
    return {p.pid for p in listed.processes if p.status == "running"}


def run_shell(
    block: Block, original: str, command: str, expected: int, env: dict[str, str], cwd: Path, token: str
) -> None:
    if SERVER_LINE.search(command) and "\n" not in command:
        server_env = dict(env)
        run_server_line(split_assignments(command, server_env), server_env, cwd)
        return
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", command],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == expected, (
        f"{block}: {original!r} (run as {command!r}) exited {done.returncode}, expected {expected}\n"
        f"stdout: {done.stdout[-2000:]}\nstderr: {done.stderr[-2000:]}"
    )
    assert token not in done.stdout + done.stderr, f"{block}: the key was printed"


FIRST_SCREEN_SHELL = "pid=$(tensorlake-sandbox start"


def shell_examples() -> list[tuple[Block, str, int, list[str]]]:
    """Each example to run: its block, its text, its promised exit status, and the one-line
    ``export`` commands before it (each example is a test of its own, so the suite's workers share
    them out; the exports apply to every later example, as in a reader's shell)."""
    examples: list[tuple[Block, str, int, list[str]]] = []
    exports: list[str] = []
    for block in SHELL:
        if not_run_reason(block) or FIRST_SCREEN_SHELL in block.code:
            continue  # the first screen's script runs in test_first_screen_round_trip_in_the_shell
        lines = list(shell_lines(block))
        for original, expected_status in (
            lines if is_command_list(block) or len(lines) == 1 else [(block.code, 0)]
        ):
            if original.startswith("export ") and "\n" not in original:
                exports.append(original)
            else:
                examples.append((block, original, expected_status, list(exports)))
    return examples


SHELL_EXAMPLES = shell_examples()


def test_there_are_shell_examples_to_run() -> None:
    assert SHELL_EXAMPLES, "no shell line ran"


@pytest.mark.parametrize(
    ("block", "original", "expected_status", "exports"),
    SHELL_EXAMPLES,
    ids=[f"block{b.number}-{i}" for i, (b, *_) in enumerate(SHELL_EXAMPLES)],
)
def test_shell_blocks_run_against_the_local_sandbox(
    local_sandbox: LocalSandbox,
    local_client: SandboxClient,
    fresh_process: Callable[[], int],
    workdir: Path,
    block: Block,
    original: str,
    expected_status: int,
    exports: list[str],
) -> None:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    env.pop("TENSORLAKE_API_KEY", None)
    before = running_pids(local_client)
    pid = fresh_process()

    def substitute(text: str) -> str:
        command = fill_brackets(f" {text} ")
        for placeholder, replacement in shell_substitutions(local_sandbox, pid):
            command = command.replace(placeholder, replacement)
        return command.strip()

    for export in exports:
        for word in shlex.split(substitute(export).removeprefix("export ")):
            name, _, value = word.partition("=")
            env[name] = value
    command = substitute(original)
    if re.search(r"\s-f\b", command):
        # A follow lasts as long as the process: give this one its EOF first.
        close_stdin(local_client, pid)
    run_shell(block, original, command, expected_status, env, workdir, local_sandbox.token)
    byte_count_read(local_client, pid)
    # Processes a line started itself (`start ... python3 -i`) are not left running.
    for other in running_pids(local_client) - before - {pid}:
        sandbox_process_kill.sync_detailed(other, client=local_client)


# -- what the first screen and the process section print (exact effects) ------------------------

LOCAL_URL = "http://127.0.0.1:8500"
LOCAL_TOKEN = "dev-token"


def block_with(language: str, *needles: str) -> str:
    found = [b.code for b in BLOCKS if b.language == language and all(n in b.code for n in needles)]
    assert found, f"README has no {language} block with {needles}"
    return found[0]


def for_local(code: str, local_sandbox: LocalSandbox) -> str:
    return code.replace(LOCAL_URL, local_sandbox.base_url).replace(LOCAL_TOKEN, local_sandbox.token)


def run_python(code: str, namespace: dict[str, Any]) -> str:
    out = io.StringIO()
    made = {k for k, v in namespace.items() if isinstance(v, SandboxClient)}
    try:
        with contextlib.redirect_stdout(out):
            exec(compile(code, str(README), "exec"), namespace)
    finally:
        for name, value in namespace.items():
            if isinstance(value, SandboxClient) and name not in made:
                value.close()  # a client the example made
    return out.getvalue()


def test_first_screen_round_trip_in_python(local_sandbox: LocalSandbox) -> None:
    first = PYTHON[0].code
    assert LOCAL_URL in first and "start(" in first and "run(" in first
    printed = run_python(for_local(first, local_sandbox), {})
    assert printed == "hello\n0\n3 'hi\\n' 'err\\n'\n"


def test_first_screen_round_trip_in_the_shell(local_sandbox: LocalSandbox) -> None:
    script = block_with("sh", FIRST_SCREEN_SHELL)
    env = {**os.environ, "PATH": str(BIN) + os.pathsep + os.environ["PATH"]}
    result = subprocess.run(
        ["bash", "-euc", for_local(script, local_sandbox).replace("; echo $?", "|| echo $?")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert local_sandbox.token not in result.stdout + result.stderr, "the key was printed"
    lines = result.stdout.splitlines()
    assert lines[0] == "hello"  # logs -f
    assert re.match(r"PID\s+NAME\s+STATUS\s+EXIT", lines[1])  # ps
    assert any(re.search(r"exited\s+0\s+.*cat", line) for line in lines[2:]), lines
    assert lines[-2:] == ["hi", "3"]  # run: its output, then its exit code


def test_driving_a_process_section_runs(local_client: SandboxClient) -> None:
    code = block_with("python", "from tensorlake_sandbox import run, start", "p.terminate()")
    printed = run_python(code, {"client": local_client})
    assert printed == "0 ['.', '..']\n3\n-15\n"


def test_generated_function_example_writes_to_a_real_process(
    local_sandbox: LocalSandbox, local_client: SandboxClient, fresh_process: Callable[[], int]
) -> None:
    code = block_with("python", 'sandbox_client("my-sandbox")', "42,")
    # The substitutions are minimal: the example names exactly one sandbox and one PID.
    assert code.count('sandbox_client("my-sandbox")') == 1 and code.count("42,") == 1, code
    pid = fresh_process()
    code = code.replace(
        'sandbox_client("my-sandbox")',
        f"sandbox_client(base_url={local_sandbox.base_url!r}, api_key={local_sandbox.token!r})",
    ).replace("42,", f"{pid},")
    exec(compile(code, str(README), "exec"), {})
    assert byte_count_read(local_client, pid) == len(b"print('hello')\n")
