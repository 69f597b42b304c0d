"""Tensorlake's official SDK, unchanged, drives managed processes in the local sandbox.

``start_process`` with a name, restart policy and health check; ``list_processes``; and
``get_process`` / ``restart_process`` / ``kill_process`` by name. Skipped where the SDK
(``tensorlake``, in the bench dependency group) is not installed.
"""

from __future__ import annotations

import gc
import time

import pytest

from tensorlake_sandbox.local import LocalSandbox

sdk = pytest.importorskip(
    "tensorlake.sandbox", reason="Tensorlake's official SDK (tensorlake) is not installed"
)

SANDBOX_ID = "sbx-official-managed"


@pytest.fixture(scope="module")
def official_sandbox():
    with LocalSandbox(stop_grace=0.5) as local:
        yield sdk.Sandbox(SANDBOX_ID, proxy_url=local.base_url, api_key=local.token)
    gc.collect()


def value(traced):
    """The SDK wraps answers in `Traced`; its ``value`` is the model."""
    return getattr(traced, "value", traced)


def test_named_process_started_listed_got_restarted_and_killed_by_name(official_sandbox):
    name = "sdk web-1"
    started = value(
        official_sandbox.start_process(
            "sleep",
            ["60"],
            name=name,
            restart={"policy": "always", "initial_backoff_ms": 100},
            health_check={"type": "tcp", "port": 1, "initial_delay_ms": 600_000},
        )
    )
    assert started.managed is not None and started.managed.name == name
    assert started.managed.restart.policy.value == "always"

    listed = list(value(official_sandbox.list_processes()))
    found = [p for p in listed if p.managed is not None and p.managed.name == name]
    assert [p.pid for p in found] == [started.pid]

    got = value(official_sandbox.get_process(name))
    assert got.pid == started.pid and got.status.value == "running"

    restarted = value(official_sandbox.restart_process(name))
    assert restarted.pid != started.pid and restarted.managed.restart_count == 1

    official_sandbox.kill_process(name)
    deadline = time.monotonic() + 10
    while (final := value(official_sandbox.get_process(name))).status.value == "running":
        assert time.monotonic() < deadline, "the killed managed process kept running"
        time.sleep(0.02)
    assert final.managed.status.value == "stopped" and final.signal == 15


def test_an_unnamed_managed_process_has_an_opaque_id(official_sandbox):
    started = value(official_sandbox.start_process("sleep", ["60"], restart={"policy": "never"}))
    assert started.managed is not None and started.managed.name is None and started.managed.id
    official_sandbox.kill_process(started.pid)
