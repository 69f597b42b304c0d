from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.managed_process_info import ManagedProcessInfo


T = TypeVar("T", bound="ProcessInfo")


@_attrs_define
class ProcessInfo:
    """
    Attributes:
        pid (int): The operating system PID of the process.
        status (str): `running`, `exited`, `signaled` or `oom_killed`; a client should accept values it does not know.
        stdin_writable (bool):
        command (str):
        args (list[str]):
        started_at (int): Unix time in milliseconds.
        handle (int | Unset): A daemon-local stable identifier. Route paths use `pid`.
        exit_code (int | None | Unset):
        signal (int | None | Unset):
        ended_at (int | None | Unset): Unix time in milliseconds; null while running.
        oom_killed (bool | Unset): True when the kernel's OOM killer ended the process.
        managed (ManagedProcessInfo | None | Unset): Present (not null) for a managed process only.
    """

    pid: int
    status: str
    stdin_writable: bool
    command: str
    args: list[str]
    started_at: int
    handle: int | Unset = UNSET
    exit_code: int | None | Unset = UNSET
    signal: int | None | Unset = UNSET
    ended_at: int | None | Unset = UNSET
    oom_killed: bool | Unset = UNSET
    managed: ManagedProcessInfo | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.managed_process_info import ManagedProcessInfo  # noqa: PLC0415

        pid = self.pid

        status = self.status

        stdin_writable = self.stdin_writable

        command = self.command

        args = self.args

        started_at = self.started_at

        handle = self.handle

        exit_code: int | None | Unset
        if isinstance(self.exit_code, Unset):
            exit_code = UNSET
        else:
            exit_code = self.exit_code

        signal: int | None | Unset
        if isinstance(self.signal, Unset):
            signal = UNSET
        else:
            signal = self.signal

        ended_at: int | None | Unset
        if isinstance(self.ended_at, Unset):
            ended_at = UNSET
        else:
            ended_at = self.ended_at

        oom_killed = self.oom_killed

        managed: dict[str, Any] | None | Unset
        if isinstance(self.managed, Unset):
            managed = UNSET
        elif isinstance(self.managed, ManagedProcessInfo):
            managed = self.managed.to_dict()
        else:
            managed = self.managed

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "pid": pid,
                "status": status,
                "stdin_writable": stdin_writable,
                "command": command,
                "args": args,
                "started_at": started_at,
            }
        )
        if handle is not UNSET:
            field_dict["handle"] = handle
        if exit_code is not UNSET:
            field_dict["exit_code"] = exit_code
        if signal is not UNSET:
            field_dict["signal"] = signal
        if ended_at is not UNSET:
            field_dict["ended_at"] = ended_at
        if oom_killed is not UNSET:
            field_dict["oom_killed"] = oom_killed
        if managed is not UNSET:
            field_dict["managed"] = managed

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.managed_process_info import ManagedProcessInfo  # noqa: PLC0415

        d = dict(src_dict)
        pid = d.pop("pid")

        status = d.pop("status")

        stdin_writable = d.pop("stdin_writable")

        command = d.pop("command")

        args = cast(list[str], d.pop("args"))

        started_at = d.pop("started_at")

        handle = d.pop("handle", UNSET)

        def _parse_exit_code(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        exit_code = _parse_exit_code(d.pop("exit_code", UNSET))

        def _parse_signal(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        signal = _parse_signal(d.pop("signal", UNSET))

        def _parse_ended_at(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        ended_at = _parse_ended_at(d.pop("ended_at", UNSET))

        oom_killed = d.pop("oom_killed", UNSET)

        def _parse_managed(data: object) -> ManagedProcessInfo | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                managed_type_0 = ManagedProcessInfo.from_dict(data)

                return managed_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(ManagedProcessInfo | None | Unset, data)

        managed = _parse_managed(d.pop("managed", UNSET))

        process_info = cls(
            pid=pid,
            status=status,
            stdin_writable=stdin_writable,
            command=command,
            args=args,
            started_at=started_at,
            handle=handle,
            exit_code=exit_code,
            signal=signal,
            ended_at=ended_at,
            oom_killed=oom_killed,
            managed=managed,
        )

        process_info.additional_properties = d
        return process_info

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
