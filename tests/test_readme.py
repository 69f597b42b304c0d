"""The README's first example runs: pointed at the local sandbox instead of "my-sandbox",
it writes its bytes to a real process, which reads exactly them."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_quickstart_runs_against_the_local_sandbox(local_sandbox, local_client, start_process, wait_finished):
    first = re.search(r"```python\n(.*?)```", README.read_text(), re.S)
    assert first, "README has no python example"
    code = first.group(1)
    assert 'sandbox_client("my-sandbox")' in code and "42," in code
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
