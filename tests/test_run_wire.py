"""What `run` sends and how it reads the sandbox's answers, against the recording server.

The recording server (a real HTTP server on 127.0.0.1) answers with exactly the events a
sandbox may send, including ones the local sandbox cannot produce (an OOM kill).
"""

from __future__ import annotations

import json
import signal

from tensorlake_sandbox import run, sandbox_client, start

from .servers.recording import RecordingApp


def sse(*events: tuple[str, dict[str, object]]) -> bytes:
    return b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)


def info(status: str, **fields: object) -> bytes:
    body = {"pid": 7, "status": status, "stdin_writable": False, "command": "x", "args": [], "started_at": 0}
    return json.dumps({**body, **fields}).encode()


def client_for(recorder: RecordingApp):
    return sandbox_client(base_url=recorder.url, api_key="k")


def test_the_servers_run_timeout_is_the_callers_rounded_up_to_whole_seconds(recorder: RecordingApp) -> None:
    # The sandbox's timeout is a backstop in whole seconds: never shorter than the caller's.
    for timeout, sent in ((1.5, 2), (0.2, 1), (3.0, 3)):
        recorder.reset()
        exit_event = {"exit_code": 0, "signal": None, "oom_killed": False, "reason": "exited"}
        recorder.reply(
            200, sse(("start", {"pid": 7}), ("exit", exit_event)), content_type="text/event-stream"
        )
        with client_for(recorder) as client:
            assert run(client, ["true"], timeout=timeout).returncode == 0
        assert json.loads(recorder.requests[0].head)["timeout"] == sent


def test_a_run_the_oom_killer_ended_returns_minus_9_not_137(recorder: RecordingApp) -> None:
    exit_event = {"exit_code": None, "signal": None, "oom_killed": True, "reason": "oom_killed"}
    recorder.reply(200, sse(("start", {"pid": 7}), ("exit", exit_event)), content_type="text/event-stream")
    with client_for(recorder) as client:
        assert run(client, ["big"]).returncode == -signal.SIGKILL


def test_a_process_whose_status_is_oom_killed_returns_minus_9_not_137(recorder: RecordingApp) -> None:
    recorder.reply(201, info("running"))
    recorder.reply(200, info("oom_killed", exit_code=None, signal=None))
    with client_for(recorder) as client:
        p = start(client, ["big"], stdin=False)
        assert p.poll() == -signal.SIGKILL
