"""One request validation for every endpoint that runs a command: process start, run, PTY create.

Each bad input gets the same status, code and message from all three (local/_validation.py),
and never a 500: an env key with ``=`` or empty, lone surrogates in any string, JSON nested
100,000 deep, a body over 1 MiB (413), a missing working_dir (reported as such), and a
program that cannot be started (400 ``SPAWN_FAILED``, on a terminal too).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tensorlake_sandbox.local import LocalSandbox

ENDPOINTS = ("/api/v1/processes", "/api/v1/processes/run", "/api/v1/pty")


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with LocalSandbox() as sandbox:
        headers = {"Authorization": f"Bearer {sandbox.token}"}
        with httpx.Client(base_url=sandbox.base_url, headers=headers, timeout=20) as client:
            yield client


def raw(body: str) -> bytes:
    """JSON text as sent (``json.dumps`` escapes a lone surrogate as ``\\udXXX``)."""
    return body.encode()


BAD: list[tuple[str, bytes, str]] = [
    ("env key with =", raw('{"command": "true", "env": {"A=B": "1"}}'), "invalid environment variable name"),
    ("empty env key", raw('{"command": "true", "env": {"": "1"}}'), "invalid environment variable name"),
    ("surrogate in command", raw('{"command": "tru\\ud800e"}'), "command is not valid Unicode"),
    ("surrogate in args", raw('{"command": "echo", "args": ["\\udfff"]}'), "args is not valid Unicode"),
    ("surrogate in env key", raw('{"command": "true", "env": {"\\ud800": "1"}}'), "is not valid Unicode"),
    ("surrogate in env value", raw('{"command": "true", "env": {"A": "\\ud800"}}'), "is not valid Unicode"),
    (
        "surrogate in working_dir",
        raw('{"command": "true", "working_dir": "/\\ud800"}'),
        "working_dir is not valid",
    ),
    ("NUL in args", raw('{"command": "echo", "args": ["a\\u0000b"]}'), "must not contain NUL"),
    ("nested deeply", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ("not JSON", b"{nope", "not valid JSON"),
    ("not an object", b"[]", "must be a JSON object"),
    ("no command", raw('{"args": []}'), "command is required"),
    ("empty command", raw('{"command": ""}'), "command is required"),
    ("missing working_dir", raw('{"command": "pwd", "working_dir": "/no/such/dir-tl"}'), "does not exist"),
    ("working_dir a file", raw('{"command": "pwd", "working_dir": "/etc/hostname"}'), "is not a directory"),
]


@pytest.mark.parametrize(("case", "body", "message"), BAD, ids=[c for c, _, _ in BAD])
def test_every_endpoint_refuses_bad_input_with_the_same_400(
    http: httpx.Client, case: str, body: bytes, message: str
) -> None:
    answers = [
        http.post(path, content=body, headers={"content-type": "application/json"}) for path in ENDPOINTS
    ]
    for path, answer in zip(ENDPOINTS, answers, strict=True):
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["code"] == "BAD_REQUEST" and message in answer.json()["error"], (
            path,
            answer.text,
        )
    assert len({a.json()["error"] for a in answers}) == 1, [a.text for a in answers]


def test_every_endpoint_answers_413_for_a_body_over_one_mib(http: httpx.Client) -> None:
    big = json.dumps({"command": "true", "args": ["x" * (1024 * 1024)]}).encode()
    for path in ENDPOINTS:
        for content in (big, iter([big[:1000], big[1000:]])):  # declared, then chunked
            answer = http.post(path, content=content)
            assert answer.status_code == 413 and answer.json()["code"] == "PAYLOAD_TOO_LARGE", (
                path,
                answer.text,
            )


def test_a_program_that_cannot_start_is_the_same_400_spawn_failed_everywhere(http: httpx.Client) -> None:
    answers: list[Any] = [http.post(path, json={"command": "no-such-program-tl"}) for path in ENDPOINTS]
    for path, answer in zip(ENDPOINTS, answers, strict=True):
        assert answer.status_code == 400 and answer.json()["code"] == "SPAWN_FAILED", (path, answer.text)
    assert {a.json()["error"] for a in answers} == {
        "cannot start 'no-such-program-tl': No such file or directory"
    }
