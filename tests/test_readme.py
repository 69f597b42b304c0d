"""The README's examples run against the local sandbox: the first screen's round trip (Python and
shell), the `run`/`start` section, and the generated-function example, which writes its bytes to a
real process that reads exactly them."""

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
LOCAL_URL = "http://127.0.0.1:8500"
LOCAL_TOKEN = "dev-token"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text(), re.S)


def block_with(lang: str, *needles: str) -> str:
    found = [b for b in blocks(lang) if all(n in b for n in needles)]
    assert found, f"README has no {lang} block with {needles}"
    return found[0]


def for_local(code: str, local_sandbox) -> str:
    return code.replace(LOCAL_URL, local_sandbox.base_url).replace(LOCAL_TOKEN, local_sandbox.token)


def run_python(code: str, namespace: dict) -> str:
    from tensorlake_sandbox import SandboxClient

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


def test_first_screen_round_trip_in_python(local_sandbox):
    first = blocks("python")[0]
    assert LOCAL_URL in first and "start(" in first and "run(" in first
    printed = run_python(for_local(first, local_sandbox), {})
    assert printed == "hello\n0\n3 'hi\\n' 'err\\n'\n"


def test_first_screen_round_trip_in_the_shell(local_sandbox):
    script = block_with("sh", "pid=$(tensorlake-sandbox start")
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
    result = subprocess.run(
        ["bash", "-euc", for_local(script, local_sandbox).replace("; echo $?", "|| echo $?")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "hello"  # logs -f
    assert re.match(r"PID\s+STATUS\s+EXIT", lines[1])  # ps
    assert any(re.search(r"exited\s+0\s+.*cat", line) for line in lines[2:]), lines
    assert lines[-2:] == ["hi", "3"]  # run: its output, then its exit code


def test_driving_a_process_section_runs(local_client):
    code = block_with("python", "from tensorlake_sandbox import run, start", "p.terminate()")
    printed = run_python(code, {"client": local_client})
    assert printed == "0 ['.', '..']\n3\n-15\n"


def test_generated_function_example_writes_to_a_real_process(
    local_sandbox, local_client, start_process, wait_finished
):
    code = block_with("python", 'sandbox_client("my-sandbox")', "42,")
    proc = start_process("wc", "-c", stdin="pipe")
    code = code.replace(
        'sandbox_client("my-sandbox")',
        f"sandbox_client(base_url={local_sandbox.base_url!r}, api_key={local_sandbox.token!r})",
    ).replace("42,", f"{proc.pid},")
    exec(compile(code, str(README), "exec"), {})

    from tensorlake_sandbox import close_stdin

    close_stdin(local_client, proc.pid)
    assert wait_finished(proc.pid).exit_code == 0
    from tensorlake_api_client.api.sandbox_processes import sandbox_process_stdout

    out = sandbox_process_stdout.sync(proc.pid, client=local_client)
    assert [line.strip() for line in out.lines] == [str(len(b"print('hello')\n"))]
