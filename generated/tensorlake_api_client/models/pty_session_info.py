from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="PtySessionInfo")


@_attrs_define
class PtySessionInfo:
    """
    Attributes:
        session_id (str):
        pid (int):
        command (str):
        args (list[str]):
        rows (int):
        cols (int):
        created_at (int): Unix time in milliseconds.
        is_alive (bool):
        ended_at (int | None | Unset): Unix time in milliseconds; null or absent while alive.
        exit_code (int | None | Unset): Null or absent while alive, or when a signal ended the process.
        oom_killed (bool | Unset):
    """

    session_id: str
    pid: int
    command: str
    args: list[str]
    rows: int
    cols: int
    created_at: int
    is_alive: bool
    ended_at: int | None | Unset = UNSET
    exit_code: int | None | Unset = UNSET
    oom_killed: bool | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        session_id = self.session_id

        pid = self.pid

        command = self.command

        args = self.args

        rows = self.rows

        cols = self.cols

        created_at = self.created_at

        is_alive = self.is_alive

        ended_at: int | None | Unset
        if isinstance(self.ended_at, Unset):
            ended_at = UNSET
        else:
            ended_at = self.ended_at

        exit_code: int | None | Unset
        if isinstance(self.exit_code, Unset):
            exit_code = UNSET
        else:
            exit_code = self.exit_code

        oom_killed = self.oom_killed

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "session_id": session_id,
                "pid": pid,
                "command": command,
                "args": args,
                "rows": rows,
                "cols": cols,
                "created_at": created_at,
                "is_alive": is_alive,
            }
        )
        if ended_at is not UNSET:
            field_dict["ended_at"] = ended_at
        if exit_code is not UNSET:
            field_dict["exit_code"] = exit_code
        if oom_killed is not UNSET:
            field_dict["oom_killed"] = oom_killed

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        session_id = d.pop("session_id")

        pid = d.pop("pid")

        command = d.pop("command")

        args = cast(list[str], d.pop("args"))

        rows = d.pop("rows")

        cols = d.pop("cols")

        created_at = d.pop("created_at")

        is_alive = d.pop("is_alive")

        def _parse_ended_at(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        ended_at = _parse_ended_at(d.pop("ended_at", UNSET))

        def _parse_exit_code(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        exit_code = _parse_exit_code(d.pop("exit_code", UNSET))

        oom_killed = d.pop("oom_killed", UNSET)

        pty_session_info = cls(
            session_id=session_id,
            pid=pid,
            command=command,
            args=args,
            rows=rows,
            cols=cols,
            created_at=created_at,
            is_alive=is_alive,
            ended_at=ended_at,
            exit_code=exit_code,
            oom_killed=oom_killed,
        )

        pty_session_info.additional_properties = d
        return pty_session_info

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
