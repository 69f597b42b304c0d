"""Managed-process options for `start` (``name``, ``restart``, ``health_check``), checked before sending.

Pure functions, shared by the sync and async `start` and the CLI. A process started with any of
them is *managed*: the sandbox restarts it per its policy, and it can be addressed by its name
(its pid changes with every restart). See openapi.yaml (`RestartPolicyConfig`,
`ProcessHealthCheck`, `ManagedProcessInfo`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tensorlake_api_client.models import ProcessHealthCheck, RestartPolicyConfig, StartProcessRequest

__all__ = ["ManagedOptions", "check_name", "check_process_key"]

_POLICIES = ("never", "on_failure", "always")
_RESTART_KEYS = {"policy", "max_restarts", "initial_backoff_ms", "max_backoff_ms"}
_HEALTH_KEYS = {"type", "port", "path", "initial_delay_ms", "interval_ms", "timeout_ms", "failure_threshold"}
_MAX_MS = 86_400_000


def check_name(name: object) -> str:
    """A managed process's name: a non-empty string, no ``/``, not all digits (a pid), not ``run``."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    if not name or "/" in name or name.isdigit() or name == "run" or len(name) > 255:
        raise ValueError(
            f"invalid process name {name!r}: a name is 1 to 255 characters, has no '/', is not all "
            "digits (digits mean a pid) and is not 'run'"
        )
    return name


def check_process_key(key: object) -> int | str:
    """A pid (a positive int) or a managed process's name, as the ``{pid}`` of a request path."""
    if isinstance(key, int) and not isinstance(key, bool):
        if key <= 0:
            raise ValueError(f"a pid is a positive integer, not {key}")
        return key
    return check_name(key)


def _whole(mapping: Mapping[str, Any], key: str, low: int, high: int, what: str) -> None:
    if key not in mapping:
        return
    value = mapping[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{what}[{key!r}] must be an integer from {low} to {high}, not {value!r}")


def _check_restart(restart: object) -> RestartPolicyConfig:
    if isinstance(restart, str):
        restart = {"policy": restart}
    if not isinstance(restart, Mapping):
        raise TypeError(
            "restart must be a policy ('never', 'on_failure', 'always') or a dict, "
            f"not {type(restart).__name__}"
        )
    unknown = set(restart) - _RESTART_KEYS
    if unknown:
        raise ValueError(f"unknown restart settings: {sorted(unknown)} (known: {sorted(_RESTART_KEYS)})")
    if restart.get("policy", "on_failure") not in _POLICIES:
        raise ValueError(
            f"restart policy must be one of {', '.join(_POLICIES)}, not {restart.get('policy')!r}"
        )
    if restart.get("max_restarts") is not None:
        _whole(restart, "max_restarts", 0, 2**31 - 1, "restart")
    _whole(restart, "initial_backoff_ms", 0, _MAX_MS, "restart")
    _whole(restart, "max_backoff_ms", 0, _MAX_MS, "restart")
    return RestartPolicyConfig.from_dict(dict(restart))


def _check_health(check: object) -> ProcessHealthCheck:
    if not isinstance(check, Mapping):
        raise TypeError(f"health_check must be a dict, not {type(check).__name__}")
    unknown = set(check) - _HEALTH_KEYS
    if unknown:
        raise ValueError(f"unknown health_check settings: {sorted(unknown)} (known: {sorted(_HEALTH_KEYS)})")
    if check.get("type") not in ("http", "tcp"):
        raise ValueError(f"health_check['type'] must be 'http' or 'tcp', not {check.get('type')!r}")
    if "port" not in check:
        raise ValueError("health_check needs a 'port'")
    _whole(check, "port", 1, 65535, "health_check")
    path = check.get("path")
    if path is not None and (
        not isinstance(path, str) or not path.startswith("/") or any(c in path for c in " \r\n")
    ):
        raise ValueError(
            f"health_check['path'] must start with '/' and hold no spaces or line breaks, not {path!r}"
        )
    _whole(check, "initial_delay_ms", 0, _MAX_MS, "health_check")
    _whole(check, "interval_ms", 1, _MAX_MS, "health_check")
    _whole(check, "timeout_ms", 1, _MAX_MS, "health_check")
    _whole(check, "failure_threshold", 1, 2**31 - 1, "health_check")
    return ProcessHealthCheck.from_dict(dict(check))


@dataclass(frozen=True, slots=True)
class ManagedOptions:
    """Checked managed-process options; all None for an ordinary process."""

    name: str | None
    restart: RestartPolicyConfig | None
    health_check: ProcessHealthCheck | None

    @classmethod
    def check(cls, name: object, restart: object, health_check: object) -> ManagedOptions:
        return cls(
            None if name is None else check_name(name),
            None if restart is None else _check_restart(restart),
            None if health_check is None else _check_health(health_check),
        )

    @property
    def managed(self) -> bool:
        return self.name is not None or self.restart is not None or self.health_check is not None

    def apply(self, body: StartProcessRequest) -> StartProcessRequest:
        if self.name is not None:
            body.name = self.name
        if self.restart is not None:
            body.restart = self.restart
        if self.health_check is not None:
            body.health_check = self.health_check
        return body
