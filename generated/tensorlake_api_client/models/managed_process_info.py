from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.managed_process_exit import ManagedProcessExit
    from ..models.process_health_check import ProcessHealthCheck
    from ..models.restart_policy_config import RestartPolicyConfig


T = TypeVar("T", bound="ManagedProcessInfo")


@_attrs_define
class ManagedProcessInfo:
    """The supervisor's view of a managed process. `status` is `starting`, `running`, `backing_off` (waiting to restart) or
    `stopped` (for good); `health_status` is `disabled`, `starting`, `healthy` or `unhealthy`. A client should accept
    values it does not know.

        Attributes:
            id (str): The name, or an opaque id when none was given (then only the PID addresses it).
            status (str):
            restart_count (int):
            restart (RestartPolicyConfig): When a managed process is started again after it ends: `never`, `on_failure` (a
                non-zero exit, a signal, or failed health checks; the default) or `always`. The wait before a restart starts at
                `initial_backoff_ms` and doubles up to `max_backoff_ms`; `max_restarts` (null: no limit) caps the restarts.
            health_status (str):
            consecutive_health_failures (int):
            name (None | str | Unset):
            health_check (None | ProcessHealthCheck | Unset):
            last_exit (ManagedProcessExit | None | Unset):
            last_error (None | str | Unset):
            next_restart_at (int | None | Unset): Unix time in milliseconds of the next restart while backing off.
    """

    id: str
    status: str
    restart_count: int
    restart: RestartPolicyConfig
    health_status: str
    consecutive_health_failures: int
    name: None | str | Unset = UNSET
    health_check: None | ProcessHealthCheck | Unset = UNSET
    last_exit: ManagedProcessExit | None | Unset = UNSET
    last_error: None | str | Unset = UNSET
    next_restart_at: int | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.managed_process_exit import ManagedProcessExit  # noqa: PLC0415
        from ..models.process_health_check import ProcessHealthCheck  # noqa: PLC0415

        id = self.id

        status = self.status

        restart_count = self.restart_count

        restart = self.restart.to_dict()

        health_status = self.health_status

        consecutive_health_failures = self.consecutive_health_failures

        name: None | str | Unset
        if isinstance(self.name, Unset):
            name = UNSET
        else:
            name = self.name

        health_check: dict[str, Any] | None | Unset
        if isinstance(self.health_check, Unset):
            health_check = UNSET
        elif isinstance(self.health_check, ProcessHealthCheck):
            health_check = self.health_check.to_dict()
        else:
            health_check = self.health_check

        last_exit: dict[str, Any] | None | Unset
        if isinstance(self.last_exit, Unset):
            last_exit = UNSET
        elif isinstance(self.last_exit, ManagedProcessExit):
            last_exit = self.last_exit.to_dict()
        else:
            last_exit = self.last_exit

        last_error: None | str | Unset
        if isinstance(self.last_error, Unset):
            last_error = UNSET
        else:
            last_error = self.last_error

        next_restart_at: int | None | Unset
        if isinstance(self.next_restart_at, Unset):
            next_restart_at = UNSET
        else:
            next_restart_at = self.next_restart_at

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "id": id,
                "status": status,
                "restart_count": restart_count,
                "restart": restart,
                "health_status": health_status,
                "consecutive_health_failures": consecutive_health_failures,
            }
        )
        if name is not UNSET:
            field_dict["name"] = name
        if health_check is not UNSET:
            field_dict["health_check"] = health_check
        if last_exit is not UNSET:
            field_dict["last_exit"] = last_exit
        if last_error is not UNSET:
            field_dict["last_error"] = last_error
        if next_restart_at is not UNSET:
            field_dict["next_restart_at"] = next_restart_at

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.managed_process_exit import ManagedProcessExit  # noqa: PLC0415
        from ..models.process_health_check import ProcessHealthCheck  # noqa: PLC0415
        from ..models.restart_policy_config import RestartPolicyConfig  # noqa: PLC0415

        d = dict(src_dict)
        id = d.pop("id")

        status = d.pop("status")

        restart_count = d.pop("restart_count")

        restart = RestartPolicyConfig.from_dict(d.pop("restart"))

        health_status = d.pop("health_status")

        consecutive_health_failures = d.pop("consecutive_health_failures")

        def _parse_name(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        name = _parse_name(d.pop("name", UNSET))

        def _parse_health_check(data: object) -> None | ProcessHealthCheck | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                health_check_type_0 = ProcessHealthCheck.from_dict(data)

                return health_check_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(None | ProcessHealthCheck | Unset, data)

        health_check = _parse_health_check(d.pop("health_check", UNSET))

        def _parse_last_exit(data: object) -> ManagedProcessExit | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                last_exit_type_0 = ManagedProcessExit.from_dict(data)

                return last_exit_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(ManagedProcessExit | None | Unset, data)

        last_exit = _parse_last_exit(d.pop("last_exit", UNSET))

        def _parse_last_error(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        last_error = _parse_last_error(d.pop("last_error", UNSET))

        def _parse_next_restart_at(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        next_restart_at = _parse_next_restart_at(d.pop("next_restart_at", UNSET))

        managed_process_info = cls(
            id=id,
            status=status,
            restart_count=restart_count,
            restart=restart,
            health_status=health_status,
            consecutive_health_failures=consecutive_health_failures,
            name=name,
            health_check=health_check,
            last_exit=last_exit,
            last_error=last_error,
            next_restart_at=next_restart_at,
        )

        managed_process_info.additional_properties = d
        return managed_process_info

    @property
    def additional_keys(self) -> list[str]:
        return list(self.additional_properties.keys())

    def __getitem__(self, key: str) -> Any:
        return self.additional_properties[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.additional_properties[key] = value

    def __delitem__(self, key: str) -> None:
        del self.additional_properties[key]

    def __contains__(self, key: str) -> bool:
        return key in self.additional_properties
