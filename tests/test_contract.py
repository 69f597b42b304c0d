"""Contract tests: schemathesis runs every operation of openapi.yaml against a local sandbox.

Real HTTP to a local sandbox on 127.0.0.1, with its bearer token; every schemathesis check
(status codes and bodies as documented, auth enforced, invalid input rejected, valid input
accepted, 405 with Allow for undocumented methods) must pass, and every Server-Sent Events
body must hold the events the spec names, each valid against its schema.

Two runs:

- ``test_openapi_contract``: each operation on its own (stateless). Random pids meet no
  process, so the ``/{pid}`` operations mostly see 404 here.
- ``test_stateful_contract``: schemathesis's stateful phase. The `links` of start's 201
  response in openapi.yaml feed the new process's pid to every ``/{pid}`` operation, so they
  run on live processes. Operations that no link reaches (they take no pid: list, run,
  health, info, ...) are run on their own in the same test, and a linked operation that the
  random scenarios never brought to a 2xx gets a directed one (a fresh `cat`, then that
  operation's valid requests on its pid). Statuses are counted per
  operation, and the test fails if any operation of the spec never got a 2xx (whose body
  was then validated), except those in ``NO_SUCCESS_HERE``, each with its reason.

Safety: the server runs whatever a start or run request names. Every start and run body is
rewritten just before it is sent, so that ``command`` is one of a few harmless programs,
``args`` are theirs, ``env`` is fixed, ``working_dir`` is a temporary directory, a well-formed
``user`` is the current user (the only one a local sandbox runs as) and a run's ``timeout``
is at most ``MAX_RUN_TIMEOUT`` seconds; values of the wrong type are left alone, so invalid
bodies stay invalid (and the server refuses them without running anything). Every process
the sandbox still runs afterwards is killed when it stops.

Steering, so that success is reachable: 70 % of the valid start bodies become `cat` reading
a stdin pipe (a live process whose stdin takes writes), three in four integer signals
become real signal numbers, and before a follow request its process is ended (EOF, else a
kill): a follow stream lasts as long as its process.

What is not checked, and why: openapi.yaml types an event stream's body as a string (OpenAPI
3.1 has no per-event schema), which schemathesis would apply to each parsed event; for those
operations ``check_event_stream`` validates every event's data against its component schema
instead. ``DELETE /{pid}`` kills a process but keeps its record (it stays listed, exited),
so the use-after-free check does not apply. A 400 on signal, stdin and close-stdin can answer
valid input (process not running, stdin not a pipe), as the spec documents.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER, HookContext
from schemathesis.specs.openapi.checks import response_schema_conformance

from tensorlake_sandbox.local import LocalSandbox

SPEC = Path(__file__).resolve().parent.parent / "openapi.yaml"
START = "sandbox_process_start"
RUN = "sandbox_process_run"
# The only programs a generated start or run request may run, with their arguments. All end
# by themselves, except `cat` reading a stdin pipe: it runs until that pipe is closed.
SAFE_COMMANDS: dict[str, list[str]] = {"true": [], "echo": ["contract"], "cat": [], "sleep": ["0"]}
# Steering: this share of valid start bodies becomes `cat` with `stdin_mode: pipe`, a live
# process whose stdin accepts writes (otherwise a stdin write could only ever get a 400).
CAT_PIPE_SHARE = 0.7
MAX_RUN_TIMEOUT = 2
MAX_EXAMPLES = 20
# The stateful phase: scenarios (each a chain of calls from a fresh start) and steps per scenario.
STATEFUL_SCENARIOS = 15
STATEFUL_STEPS = 10
# Positive cases per operation run alone (no link reaches it, or a directed scenario).
UNLINKED_EXAMPLES = 8
# Operations of the spec allowed to end the stateful run without a 2xx, each with its reason.
# Empty: every operation can succeed against the local sandbox.
NO_SUCCESS_HERE: dict[str, str] = {}

_workdir = tempfile.mkdtemp(prefix="tl-contract-")
_ME = pwd.getpwuid(os.getuid())


def _pick(text: str, n: int) -> int:
    """A deterministic choice in range(n) from generated text (same case, same choice)."""
    return int(hashlib.sha256(text.encode("utf-8", "replace")).hexdigest(), 16) % n


def is_json_integer(value: object) -> bool:
    """An integer as JSON Schema counts them: 3 and 3.0 (not True)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def make_command_safe(body: dict[str, Any]) -> None:
    """Rewrite the fields a start and a run body share, in place: a harmless program only."""
    command = body.get("command")
    if isinstance(command, str):
        names = sorted(SAFE_COMMANDS)
        safe = names[_pick(command, len(names))]
        body["command"] = safe
        args = body.get("args")
        if isinstance(args, list) and all(isinstance(a, str) for a in args):
            body["args"] = list(SAFE_COMMANDS[safe])
    env = body.get("env")
    if isinstance(env, dict) and all(isinstance(v, str) for v in env.values()):
        body["env"] = {"TL_CONTRACT": "1"} if env else {}
    if isinstance(body.get("working_dir"), str):
        body["working_dir"] = _workdir
    # Whatever user a valid body names becomes this user, in the same form.
    user = body.get("user")
    if isinstance(user, str):
        body["user"] = _ME.pw_name
    elif isinstance(user, dict) and isinstance(user.get("name"), str) and "uid" not in user:
        body["user"] = {**user, "name": _ME.pw_name}
    elif isinstance(user, dict) and all(is_json_integer(user.get(k)) for k in ("uid", "gid")):
        body["user"] = {**user, "uid": _ME.pw_uid, "gid": _ME.pw_gid}


def make_start_body_safe(body: dict[str, Any]) -> None:
    """Rewrite a generated start body in place so that it can only run a harmless program.

    ``CAT_PIPE_SHARE`` of the valid bodies (by a hash of the generated command) become `cat` reading a
    stdin pipe, so that stdin writes meet a live, writable process.
    """
    command = body.get("command")
    make_command_safe(body)
    restart = body.get("restart")
    if isinstance(restart, dict) and (
        restart.get("max_restarts") is None or is_json_integer(restart["max_restarts"])
    ):
        # A managed process restarts until its limit: keep it small (a valid value stays valid).
        restart["max_restarts"] = min(2, int(restart.get("max_restarts") or 2))
    valid_stdin = body.get("stdin_mode", "pipe") in ("pipe", "closed")
    if isinstance(command, str) and valid_stdin and _pick("pipe:" + command, 100) < CAT_PIPE_SHARE * 100:
        body["command"] = "cat"
        if isinstance(body.get("args"), list) and all(isinstance(a, str) for a in body["args"]):
            body["args"] = []
        body["stdin_mode"] = "pipe"


def make_run_body_safe(body: dict[str, Any]) -> None:
    """Rewrite a generated run body in place: a harmless program, and a timeout of at most
    ``MAX_RUN_TIMEOUT`` seconds (a valid one stays valid, an invalid one stays invalid)."""
    make_command_safe(body)
    timeout = body.get("timeout")
    if is_json_integer(timeout) and timeout > MAX_RUN_TIMEOUT:
        body["timeout"] = MAX_RUN_TIMEOUT


# Signals a steered signal body sends: all valid, none harmful to anything but our own process.
# Mostly ones a `cat` survives (SIGCONT, SIGWINCH, SIGURG: ignored or harmless by default), so
# that the next signal to the same process can succeed too.
STEERED_SIGNALS = (18, 28, 23, 18, 28, 23, 15, 9, 19)


def steer_signal_body(body: dict[str, Any]) -> None:
    """Three in four integer signals (by value) become a real signal number, so that a signal
    to a live process can succeed; the rest stay as generated (mostly invalid numbers)."""
    sig = body.get("signal")
    if is_json_integer(sig) and _pick(f"signal:{sig}", 4) != 0:
        body["signal"] = STEERED_SIGNALS[_pick(str(sig), len(STEERED_SIGNALS))]


# Framing headers decide how the HTTP server parses the request (a generated
# "Content-Length: O2!gm" gets uvicorn's own 400 before the app runs): they test the HTTP
# parser, not the API, so generated values for them are dropped.
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "host", "connection", "expect"})


def operation_id(case: Any) -> str:
    op_id: str = case.operation.definition.raw["operationId"]
    return op_id


def spec_operations() -> dict[str, str]:
    """Every operation of openapi.yaml: operationId -> label ("GET /api/v1/processes")."""
    ops = [result.ok() for result in schema.get_all_operations()]
    return {op.definition.raw["operationId"]: op.label for op in ops}


# -- Server-Sent Events bodies ---------------------------------------------------------------

FOLLOW_EVENTS = {"output": "OutputEvent", "eof": None}
# What each event-stream operation sends: event name -> schema of its data (None: `{}`).
# An operation that answers text/event-stream and is not here fails the check: add it.
SSE_EVENTS: dict[str, dict[str, str | None]] = {
    RUN: {"start": "RunStartEvent", "output": "OutputEvent", "exit": "RunExitEvent"},
    "sandbox_process_follow_stdout": FOLLOW_EVENTS,
    "sandbox_process_follow_stderr": FOLLOW_EVENTS,
    "sandbox_process_follow_output": FOLLOW_EVENTS,
}
# The event that ends each stream, and the first event where there is a fixed one.
SSE_LAST = {RUN: "exit"} | dict.fromkeys(
    ("sandbox_process_follow_stdout", "sandbox_process_follow_stderr", "sandbox_process_follow_output"), "eof"
)
SSE_FIRST = {RUN: "start"}
# Output events carry `stream` on combined streams only.
SSE_STREAM_FIELD = {RUN: True, "sandbox_process_follow_output": True}


def parse_sse(text: str) -> list[tuple[str, str]]:
    """(event, data) pairs of an event-stream body (comments and ids ignored)."""
    events: list[tuple[str, str]] = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        name, data = "message", []
        for line in block.split("\n"):
            if line.startswith(":") or not line:
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
        if data:
            events.append((name, "\n".join(data)))
    return events


def is_event_stream(case: Any) -> bool:
    """Whether the operation documents a text/event-stream success response."""
    responses = case.operation.definition.raw.get("responses", {})
    return any(
        "text/event-stream" in (response.get("content") or {})
        for status, response in responses.items()
        if str(status).startswith("2")
    )


def validation_kwargs(case: Any) -> dict[str, Any]:
    """How a response is validated. openapi.yaml documents an event stream's body as a string
    (OpenAPI 3.1 has no per-event schema), which schemathesis would apply to every event:
    for those operations ``check_event_stream`` validates each event's data instead."""
    excluded = [response_schema_conformance] if is_event_stream(case) else []
    return {"additional_checks": [check_event_stream], "excluded_checks": excluded}


def check_events(op: str, text: str) -> None:
    """An event-stream body of operation ``op`` holds its events in order, each valid against its schema."""
    assert op in SSE_EVENTS, f"{op} answers text/event-stream: add its events to SSE_EVENTS in {__file__}"
    expected = SSE_EVENTS[op]
    events = parse_sse(text)
    assert events, f"{op}: the event stream is empty"
    names = [name for name, _ in events]
    assert names[-1] == SSE_LAST[op], f"{op}: the stream ends with {names[-1]!r}, not {SSE_LAST[op]!r}"
    assert names.count(SSE_LAST[op]) == 1, f"{op}: {SSE_LAST[op]!r} more than once: {names}"
    if op in SSE_FIRST:
        assert names[0] == SSE_FIRST[op] and names.count(SSE_FIRST[op]) == 1, f"{op}: events {names}"
    for name, raw in events:
        assert name in expected, f"{op}: unexpected event {name!r} (expected {sorted(expected)})"
        data = json.loads(raw)
        schema_name = expected[name]
        if schema_name is None:
            assert data == {}, f"{op}: {name!r} data should be {{}}, got {raw!r}"
            continue
        event_schema = {
            **_RAW_SPEC["components"]["schemas"][schema_name],
            "components": _RAW_SPEC["components"],
        }
        jsonschema.validate(data, event_schema, cls=jsonschema.Draft202012Validator)
        if schema_name == "OutputEvent":
            has_stream = "stream" in data
            assert has_stream == SSE_STREAM_FIELD.get(op, False), f"{op}: `stream` field wrong in {raw!r}"
            if has_stream:
                assert data["stream"] in ("stdout", "stderr"), f"{op}: stream {data['stream']!r}"


def check_event_stream(ctx: Any, response: Any, case: Any) -> bool | None:
    """The schemathesis check: a 2xx body of an event-stream operation passes ``check_events``."""
    if not 200 <= response.status_code < 300 or not is_event_stream(case):
        return None
    check_events(operation_id(case), response.text)
    return True


# -- the target, its hooks and the status log -------------------------------------------------


class ContractTarget:
    """The local sandbox the contract runs against, the hooks that keep requests safe, and a
    log of the statuses each operation got."""

    def __init__(self, sandbox: LocalSandbox) -> None:
        self.base_url = sandbox.base_url
        self.headers = {"Authorization": f"Bearer {sandbox.token}"}
        self.http = httpx.Client(base_url=self.base_url, headers=self.headers, timeout=10)
        self.statuses: dict[str, Counter[int]] = defaultdict(Counter)

    @property
    def call_kwargs(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "headers": self.headers, "timeout": 10}

    def before_call(self, context: HookContext, case: Any, kwargs: dict[str, Any]) -> None:
        """Applied to every request schemathesis sends (every phase), right before it leaves."""
        if case.headers:
            for name in [n for n in case.headers if n.lower() in FRAMING_HEADERS]:
                del case.headers[name]
        op = operation_id(case)
        if op == START and isinstance(case.body, dict):
            make_start_body_safe(case.body)
        elif op == RUN and isinstance(case.body, dict):
            make_run_body_safe(case.body)
        elif op == "sandbox_pty_create" and isinstance(case.body, dict):
            make_command_safe(case.body)  # a terminal runs a command too
        elif op == "sandbox_process_signal" and isinstance(case.body, dict):
            steer_signal_body(case.body)
        elif op.startswith("sandbox_process_follow_"):
            pid = (case.path_parameters or {}).get("pid")
            if isinstance(pid, int) and not isinstance(pid, bool):
                self.end_process(pid)

    def end_process(self, pid: int) -> None:
        """A follow stream lasts as long as its process: make sure the process ends first.
        EOF ends `cat` (the only long-lived program allowed); a kill ends anything else
        (e.g. a process stopped by a generated SIGSTOP)."""
        info = self.http.get(f"/api/v1/processes/{pid}")
        if info.status_code != 200 or info.json()["status"] != "running":
            return
        if info.json()["stdin_writable"]:
            self.http.post(f"/api/v1/processes/{pid}/stdin/close")
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                if self.http.get(f"/api/v1/processes/{pid}").json()["status"] != "running":
                    return
                time.sleep(0.01)
        self.http.delete(f"/api/v1/processes/{pid}")

    def after_call(self, context: HookContext, case: Any, response: Any) -> None:
        self.statuses[operation_id(case)][response.status_code] += 1

    def succeeded(self) -> set[str]:
        return {op for op, counts in self.statuses.items() if any(200 <= s < 300 for s in counts)}

    def kill_all(self) -> None:
        for process in self.http.get("/api/v1/processes").json()["processes"]:
            managed = process.get("managed")
            if process["status"] == "running" or (managed and managed["status"] != "stopped"):
                self.http.delete(f"/api/v1/processes/{process['pid']}")
        for session in self.http.get("/api/v1/pty").json()["sessions"]:
            self.http.delete(f"/api/v1/pty/{session['session_id']}")


@pytest.fixture(scope="module")
def contract_target() -> Iterator[ContractTarget]:
    """A local sandbox of its own (its processes stay out of other tests' way), with the hooks."""
    with LocalSandbox(port=0) as sandbox:
        target = ContractTarget(sandbox)
        GLOBAL_HOOK_DISPATCHER.register_hook_with_name(target.before_call, "before_call")
        GLOBAL_HOOK_DISPATCHER.register_hook_with_name(target.after_call, "after_call")
        try:
            yield target
        finally:
            GLOBAL_HOOK_DISPATCHER.unregister(target.before_call)
            GLOBAL_HOOK_DISPATCHER.unregister(target.after_call)
            target.kill_all()
            target.http.close()


# A 400 answers a valid request to these operations when the process is in the wrong state
# (openapi.yaml documents it: not running, stdin not a pipe or already closed, not managed), so for them a
# 400 is an accepted answer to schema-valid data. Start and run get no such allowance: their
# bodies are made valid for this machine (existing program, directory and user).
STATE_DEPENDENT_400 = [
    "sandbox_process_signal",
    "sandbox_process_stdin",
    "sandbox_process_close_stdin",
    "sandbox_process_restart",  # 400 NOT_MANAGED: the process was started without name/restart/health_check
]
#
# `DELETE /{pid}` kills a process; it does not delete it: the process stays listed and
# readable, exited (openapi.yaml: "including exited ones"). So schemathesis's use-after-free
# check (a deleted resource must answer 404) does not apply to this API.
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {"use_after_free": {"enabled": False}},
        "operations": [
            {
                "include-operation-id": STATE_DEPENDENT_400,
                "checks": {
                    "positive_data_acceptance": {
                        "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "429", "5xx"]
                    }
                },
            }
        ],
    }
)
schema = schemathesis.openapi.from_path(SPEC, config=CONFIG)
_RAW_SPEC: dict[str, Any] = schema.raw_schema
# Deterministic by default so that a CI run is reproducible; CONTRACT_EXPLORE=1 explores anew.
DETERMINISTIC = os.environ.get("CONTRACT_EXPLORE") != "1"
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=DETERMINISTIC)


@schema.parametrize()
def test_openapi_contract(case: Any, contract_target: ContractTarget) -> None:
    case.call_and_validate(**contract_target.call_kwargs, **validation_kwargs(case))


# -- the stateful run ----------------------------------------------------------------------------


def _hypothesis_settings(max_examples: int, **extra: Any) -> hypothesis.settings:
    return hypothesis.settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=DETERMINISTIC,
        database=None,
        suppress_health_check=list(HealthCheck),
        **extra,
    )


def run_operation_alone(label: str, target: ContractTarget, pid: int | None = None) -> None:
    """Valid requests to one operation: on its own (it takes no pid), or on process ``pid``."""
    method, path = label.split(" ", 1)
    operation = schema[path][method]
    strategy = operation.as_strategy(generation_mode=GenerationMode.POSITIVE)
    if pid is not None:

        def on_pid(case: Any) -> Any:
            case.path_parameters = {**(case.path_parameters or {}), "pid": pid}
            return case

        strategy = strategy.map(on_pid)

    @hypothesis.given(case=strategy)
    @_hypothesis_settings(UNLINKED_EXAMPLES, phases=[hypothesis.Phase.generate])
    def run(case: Any) -> None:
        case.call_and_validate(**target.call_kwargs, **validation_kwargs(case))

    run()


def test_stateful_contract(contract_target: ContractTarget) -> None:
    """Every operation of the spec gets a 2xx, its body validated, with pids of live processes."""
    target = contract_target
    target.statuses.clear()
    base = schema.as_state_machine()

    class Workflow(base):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return target.call_kwargs

        def validate_response(
            self, response: Any, case: Any, additional_checks: Any = None, **kw: Any
        ) -> None:
            case.validate_response(
                response, transport_kwargs=kw or None, recorder=self.recorder, **validation_kwargs(case)
            )

        def teardown(self) -> None:
            # Each scenario starts from a sandbox without live processes.
            target.kill_all()

    Workflow.run(settings=_hypothesis_settings(STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS))

    linked = {op for op in Workflow._transitions.operations}
    ops = spec_operations()
    for op_id, label in ops.items():
        if label not in linked:
            run_operation_alone(label, target)
        elif op_id not in target.succeeded():
            # The random scenarios never brought it to a 2xx (e.g. every signal came after its
            # process had ended): a directed scenario, on a fresh live process.
            live_cat: dict[str, Any] = {"command": "cat", "stdin_mode": "pipe"}
            if op_id == "sandbox_process_restart":  # managed processes only
                live_cat["restart"] = {"policy": "never"}
            started = target.http.post("/api/v1/processes", json=live_cat)
            assert started.status_code == 201, started.text
            run_operation_alone(label, target, pid=started.json()["pid"])

    table = "\n".join(f"  {op}: {dict(sorted(target.statuses[op].items()))}" for op in sorted(ops))
    never = sorted(set(ops) - target.succeeded() - set(NO_SUCCESS_HERE))
    assert not never, (
        f"operations that never got a 2xx: {never}\nstatuses per operation:\n{table}\n"
        "An operation that needs an id from another one's response needs an OpenAPI link from that "
        "response (as start's 201 links its pid); one that cannot succeed against a local sandbox "
        "goes into NO_SUCCESS_HERE, with the reason."
    )
    stale = sorted(set(NO_SUCCESS_HERE) - set(ops))
    assert not stale, f"NO_SUCCESS_HERE names operations the spec no longer has: {stale}"
    # A write to a live process's stdin is the point of this library: it must have happened.
    assert target.statuses["sandbox_process_stdin"][204] > 0, table


def test_start_bodies_are_made_safe() -> None:
    for command in ("rm", "sh", "python3", "x" * 40, "kill"):
        body: dict[str, Any] = {
            "command": command,
            "args": ["-rf", "/"],
            "env": {"LD_PRELOAD": "/tmp/x.so"},
            "working_dir": "/",
            "stdin_mode": "closed",
        }
        make_start_body_safe(body)
        assert body["command"] in SAFE_COMMANDS
        assert body["args"] == SAFE_COMMANDS[body["command"]]
        assert body["env"] == {"TL_CONTRACT": "1"}
        assert body["working_dir"] == _workdir
    invalid: dict[str, Any] = {"command": "rm", "args": "-rf /", "env": {"A": 1}, "working_dir": 5}
    make_start_body_safe(invalid)
    assert invalid["command"] in SAFE_COMMANDS
    assert json.dumps({k: invalid[k] for k in ("args", "env", "working_dir")}) == json.dumps(
        {"args": "-rf /", "env": {"A": 1}, "working_dir": 5}
    )
    for user, expected in [
        ("root", _ME.pw_name),
        ({"name": "nobody"}, {"name": _ME.pw_name}),
        ({"uid": 5.0, "gid": -2147483648}, {"uid": _ME.pw_uid, "gid": _ME.pw_gid}),
        ({"uid": "5", "gid": 1}, {"uid": "5", "gid": 1}),  # invalid: stays invalid
        (7, 7),
    ]:
        with_user: dict[str, Any] = {"command": "id", "user": user}
        make_start_body_safe(with_user)
        assert with_user["user"] == expected
    bad_mode: dict[str, Any] = {"command": "rm", "stdin_mode": "socket"}
    make_start_body_safe(bad_mode)
    assert bad_mode["stdin_mode"] == "socket", "an invalid body must stay invalid"


def test_start_bodies_are_steered_to_a_live_stdin_pipe() -> None:
    bodies = [{"command": f"c{i}"} for i in range(200)]
    for body in bodies:
        make_start_body_safe(body)
    piped = [b for b in bodies if b.get("stdin_mode") == "pipe"]
    assert all(b["command"] == "cat" for b in piped)
    assert CAT_PIPE_SHARE - 0.15 < len(piped) / len(bodies) < CAT_PIPE_SHARE + 0.15


def test_run_bodies_are_made_safe() -> None:
    body: dict[str, Any] = {"command": "rm", "args": ["-rf", "/"], "env": {"A": "b"}, "timeout": 3600.0}
    make_run_body_safe(body)
    assert body["command"] in SAFE_COMMANDS and body["args"] == SAFE_COMMANDS[body["command"]]
    assert body["env"] == {"TL_CONTRACT": "1"} and body["timeout"] == MAX_RUN_TIMEOUT
    for timeout in (0, -5, "60", True, None, 1):
        invalid: dict[str, Any] = {"command": "sh", "timeout": timeout}
        make_run_body_safe(invalid)
        assert invalid["timeout"] == timeout and invalid["command"] in SAFE_COMMANDS


def test_event_streams_are_checked_event_by_event() -> None:
    line = '{"line":"a","timestamp":1,"stream":"stdout"}'
    good = f"event: output\ndata: {line}\n\n: ping\n\nevent: eof\ndata: {{}}\n\n"
    assert parse_sse(good) == [("output", line), ("eof", "{}")]
    check_events("sandbox_process_follow_output", good)
    bad = {
        "no eof": f"event: output\ndata: {line}\n\n",
        "stream on a single stream": good,
        "a timestamp that is a string": good.replace('"timestamp":1', '"timestamp":"1"'),
        "eof with data": 'event: eof\ndata: {"x":1}\n\n',
        "an unknown event": "event: ping\ndata: {}\n\nevent: eof\ndata: {}\n\n",
    }
    for what, text in bad.items():
        with pytest.raises((AssertionError, jsonschema.ValidationError)):
            check_events("sandbox_process_follow_stdout", text)
        print(f"refused: {what}")
    run = '{"pid":1}'
    check_events(
        RUN, f"event: start\ndata: {run}\n\nevent: output\ndata: {line}\n\nevent: exit\ndata: {{}}\n\n"
    )
    with pytest.raises(AssertionError, match="ends with"):
        check_events(RUN, f"event: start\ndata: {run}\n\n")
    with pytest.raises(AssertionError, match="SSE_EVENTS"):
        check_events("sandbox_pty_follow", good)
