from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.create_pty_request_env import CreatePtyRequestEnv


T = TypeVar("T", bound="CreatePtyRequest")


@_attrs_define
class CreatePtyRequest:
    """
    Attributes:
        command (str): The program to run, looked up on `PATH` when it has no slash.
        args (list[str] | Unset):
        env (CreatePtyRequestEnv | Unset): Variables applied to the terminal's environment.
        working_dir (None | str | Unset):
        rows (int | Unset): Clamped to 1..500. Default: 24.
        cols (int | Unset): Clamped to 1..1000. Default: 80.
    """

    command: str
    args: list[str] | Unset = UNSET
    env: CreatePtyRequestEnv | Unset = UNSET
    working_dir: None | str | Unset = UNSET
    rows: int | Unset = 24
    cols: int | Unset = 80
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        command = self.command

        args: list[str] | Unset = UNSET
        if not isinstance(self.args, Unset):
            args = self.args

        env: dict[str, Any] | Unset = UNSET
        if not isinstance(self.env, Unset):
            env = self.env.to_dict()

        working_dir: None | str | Unset
        if isinstance(self.working_dir, Unset):
            working_dir = UNSET
        else:
            working_dir = self.working_dir

        rows = self.rows

        cols = self.cols

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "command": command,
            }
        )
        if args is not UNSET:
            field_dict["args"] = args
        if env is not UNSET:
            field_dict["env"] = env
        if working_dir is not UNSET:
            field_dict["working_dir"] = working_dir
        if rows is not UNSET:
            field_dict["rows"] = rows
        if cols is not UNSET:
            field_dict["cols"] = cols

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.create_pty_request_env import CreatePtyRequestEnv  # noqa: PLC0415

        d = dict(src_dict)
        command = d.pop("command")

        args = cast(list[str], d.pop("args", UNSET))

        _env = d.pop("env", UNSET)
        env: CreatePtyRequestEnv | Unset
        if isinstance(_env, Unset):
            env = UNSET
        else:
            env = CreatePtyRequestEnv.from_dict(_env)

        def _parse_working_dir(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        working_dir = _parse_working_dir(d.pop("working_dir", UNSET))

        rows = d.pop("rows", UNSET)

        cols = d.pop("cols", UNSET)

        create_pty_request = cls(
            command=command,
            args=args,
            env=env,
            working_dir=working_dir,
            rows=rows,
            cols=cols,
        )

        create_pty_request.additional_properties = d
        return create_pty_request

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
