from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.process_user_ids import ProcessUserIds
    from ..models.process_user_name import ProcessUserName
    from ..models.run_process_request_env import RunProcessRequestEnv


T = TypeVar("T", bound="RunProcessRequest")


@_attrs_define
class RunProcessRequest:
    """
    Attributes:
        command (str): The program to run, looked up on `PATH` when it has no slash.
        args (list[str] | Unset):
        env (RunProcessRequestEnv | Unset): Variables applied to the process environment.
        working_dir (None | str | Unset):
        user (ProcessUserIds | ProcessUserName | str | Unset): Who the process runs as: a user name, a UID string,
            `"uid:gid"`, `{"name": ...}` or `{"uid": ..., "gid": ...}`. Defaults to the sandbox's user (`tl-user` on
            Tensorlake).
        timeout (int | None | Unset): Seconds; the whole process tree is killed if it is still running then.
    """

    command: str
    args: list[str] | Unset = UNSET
    env: RunProcessRequestEnv | Unset = UNSET
    working_dir: None | str | Unset = UNSET
    user: ProcessUserIds | ProcessUserName | str | Unset = UNSET
    timeout: int | None | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        from ..models.process_user_ids import ProcessUserIds  # noqa: PLC0415
        from ..models.process_user_name import ProcessUserName  # noqa: PLC0415

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

        user: dict[str, Any] | str | Unset
        if isinstance(self.user, Unset):
            user = UNSET
        elif isinstance(self.user, ProcessUserName):
            user = self.user.to_dict()
        elif isinstance(self.user, ProcessUserIds):
            user = self.user.to_dict()
        else:
            user = self.user

        timeout: int | None | Unset
        if isinstance(self.timeout, Unset):
            timeout = UNSET
        else:
            timeout = self.timeout

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
        if user is not UNSET:
            field_dict["user"] = user
        if timeout is not UNSET:
            field_dict["timeout"] = timeout

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.process_user_ids import ProcessUserIds  # noqa: PLC0415
        from ..models.process_user_name import ProcessUserName  # noqa: PLC0415
        from ..models.run_process_request_env import RunProcessRequestEnv  # noqa: PLC0415

        d = dict(src_dict)
        command = d.pop("command")

        args = cast(list[str], d.pop("args", UNSET))

        _env = d.pop("env", UNSET)
        env: RunProcessRequestEnv | Unset
        if isinstance(_env, Unset):
            env = UNSET
        else:
            env = RunProcessRequestEnv.from_dict(_env)

        def _parse_working_dir(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        working_dir = _parse_working_dir(d.pop("working_dir", UNSET))

        def _parse_user(data: object) -> ProcessUserIds | ProcessUserName | str | Unset:
            if isinstance(data, Unset):
                return data
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_process_user_type_1 = ProcessUserName.from_dict(data)

                return componentsschemas_process_user_type_1
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_process_user_type_2 = ProcessUserIds.from_dict(data)

                return componentsschemas_process_user_type_2
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            return cast(ProcessUserIds | ProcessUserName | str | Unset, data)

        user = _parse_user(d.pop("user", UNSET))

        def _parse_timeout(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        timeout = _parse_timeout(d.pop("timeout", UNSET))

        run_process_request = cls(
            command=command,
            args=args,
            env=env,
            working_dir=working_dir,
            user=user,
            timeout=timeout,
        )

        run_process_request.additional_properties = d
        return run_process_request

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
