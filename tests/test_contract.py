"""Contract test: schemathesis runs every operation of openapi.yaml against the local sandbox.

Real HTTP to the session's local sandbox on 127.0.0.1, with its bearer token; every
schemathesis check (status codes and bodies as documented, auth enforced, invalid input
rejected, valid input accepted, 405 with Allow for undocumented methods) must pass.

Safety: the server runs whatever a start or run request names. Every such body is rewritten
just before it is sent, so that ``command`` is one of a few harmless programs, ``args``
are theirs, ``env`` is fixed and ``working_dir`` is a temporary directory; values of the
wrong type are left alone, so invalid bodies stay invalid (and the server refuses them
without running anything). A well-formed ``user`` becomes the current user (the only one a
local sandbox runs as). Every process still running afterwards is killed.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import yaml
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER, HookContext

from tensorlake_api_client.api.sandbox_processes import sandbox_process_kill, sandbox_process_list
from tensorlake_sandbox import SandboxClient
from tensorlake_sandbox.local import LocalSandbox

SPEC = Path(__file__).resolve().parent.parent / "openapi.yaml"
START = ("POST", "/api/v1/processes")
# Run starts a process too: its bodies are made just as safe.
RUN = ("POST", "/api/v1/processes/run")
# The only programs a generated start request may run, with their arguments.
SAFE_COMMANDS: dict[str, list[str]] = {"true": [], "echo": ["contract"], "cat": [], "sleep": ["0"]}
MAX_EXAMPLES = 30

_workdir = tempfile.mkdtemp(prefix="tl-contract-")
CURRENT_USER = pwd.getpwuid(os.getuid()).pw_name


def make_start_body_safe(body: dict[str, Any]) -> None:
    """Rewrite a generated start body in place so that it can only run a harmless program."""
    command = body.get("command")
    if isinstance(command, str):
        names = sorted(SAFE_COMMANDS)
        safe = names[int(hashlib.sha256(command.encode("utf-8", "replace")).hexdigest(), 16) % len(names)]
        body["command"] = safe
        args = body.get("args")
        if isinstance(args, list) and all(isinstance(a, str) for a in args):
            body["args"] = list(SAFE_COMMANDS[safe])
    env = body.get("env")
    if isinstance(env, dict) and all(isinstance(v, str) for v in env.values()):
        body["env"] = {"TL_CONTRACT": "1"} if env else {}
    if isinstance(body.get("working_dir"), str):
        body["working_dir"] = _workdir
    # The local sandbox runs everything as the current user and refuses any other (400): a
    # well-formed user becomes the current one, in the same form; a malformed one stays.
    user = body.get("user")
    if isinstance(user, str):
        body["user"] = CURRENT_USER
    elif isinstance(user, dict) and isinstance(user.get("name"), str) and not {"uid", "gid"} & set(user):
        user["name"] = CURRENT_USER
    elif (
        isinstance(user, dict)
        and "name" not in user
        and all(isinstance(user.get(k), int) and not isinstance(user.get(k), bool) for k in ("uid", "gid"))
    ):
        user["uid"], user["gid"] = os.getuid(), os.getgid()


# Framing headers decide how the HTTP server parses the request (a generated
# "Content-Length: O2!gm" gets uvicorn's own 400 before the app runs): they test the HTTP
# parser, not the API, so generated values for them are dropped.
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "host", "connection", "expect"})


def before_call(context: HookContext, case: Any, kwargs: dict[str, Any]) -> None:
    """Applied to every request schemathesis sends (every phase), right before it leaves."""
    if case.headers:
        for name in [n for n in case.headers if n.lower() in FRAMING_HEADERS]:
            del case.headers[name]
    if (case.method.upper(), case.path) in (START, RUN) and isinstance(case.body, dict):
        make_start_body_safe(case.body)


def _sse_as_events(raw: dict[str, Any]) -> dict[str, Any]:
    """The spec with each ``text/event-stream`` schema read as schemathesis reads it before OpenAPI
    3.2: as the shape of one event (``{event, data, ...}``), not of the stream's text.

    openapi.yaml documents those streams as ``type: string`` (the body is text); schemathesis
    would check each parsed event object against that and fail. Each event's ``data`` is
    checked by the tests of the local sandbox's follow and run streams instead.
    """
    for path in raw["paths"].values():
        for operation in path.values():
            for response in (
                (operation.get("responses") or {}).values() if isinstance(operation, dict) else []
            ):
                stream = (response.get("content") or {}).get("text/event-stream")
                if stream is not None:
                    stream["schema"] = {
                        "type": "object",
                        "required": ["data"],
                        "properties": {"event": {"type": "string"}, "data": {"type": "string"}},
                    }
    return raw


schema = schemathesis.openapi.from_dict(_sse_as_events(yaml.safe_load(SPEC.read_text())))
# Deterministic by default so that a CI run is reproducible; CONTRACT_EXPLORE=1 explores anew.
schema.config.generation.update(
    max_examples=MAX_EXAMPLES, deterministic=os.environ.get("CONTRACT_EXPLORE") != "1"
)


@pytest.fixture(scope="module")
def contract_target(local_sandbox: LocalSandbox, local_client: SandboxClient) -> Iterator[dict[str, Any]]:
    """Where schemathesis sends requests (the session's local sandbox), with the hook that keeps them safe."""
    GLOBAL_HOOK_DISPATCHER.register_hook_with_name(before_call, "before_call")
    try:
        yield {
            "base_url": local_sandbox.base_url,
            "headers": {"Authorization": f"Bearer {local_sandbox.token}"},
            "timeout": 10,
        }
    finally:
        GLOBAL_HOOK_DISPATCHER.unregister(before_call)
        listed = sandbox_process_list.sync(client=local_client)
        for process in getattr(listed, "processes", []):
            if process.status == "running":
                sandbox_process_kill.sync_detailed(process.pid, client=local_client)


@schema.parametrize()
def test_openapi_contract(case: Any, contract_target: dict[str, Any]) -> None:
    case.call_and_validate(**contract_target)


def test_start_bodies_are_made_safe() -> None:
    body: dict[str, Any] = {
        "command": "rm",
        "args": ["-rf", "/"],
        "env": {"LD_PRELOAD": "/tmp/x.so"},
        "working_dir": "/",
        "stdin_mode": "pipe",
    }
    make_start_body_safe(body)
    assert body["command"] in SAFE_COMMANDS
    assert body["args"] == SAFE_COMMANDS[body["command"]]
    assert body["env"] == {"TL_CONTRACT": "1"}
    assert body["working_dir"] == _workdir and body["stdin_mode"] == "pipe"
    invalid: dict[str, Any] = {"command": "rm", "args": "-rf /", "env": {"A": 1}, "working_dir": 5}
    make_start_body_safe(invalid)
    assert invalid["command"] in SAFE_COMMANDS
    assert json.dumps({k: invalid[k] for k in ("args", "env", "working_dir")}) == json.dumps(
        {"args": "-rf /", "env": {"A": 1}, "working_dir": 5}
    )
