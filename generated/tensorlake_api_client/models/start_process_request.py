from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.output_mode import OutputMode
from ..models.stdin_mode import StdinMode
from ..types import UNSET, Unset

if TYPE_CHECKING:
    from ..models.process_health_check import ProcessHealthCheck
    from ..models.process_user_ids import ProcessUserIds
    from ..models.process_user_name import ProcessUserName
    from ..models.restart_policy_config import RestartPolicyConfig
    from ..models.start_process_request_env import StartProcessRequestEnv


T = TypeVar("T", bound="StartProcessRequest")


@_attrs_define
class StartProcessRequest:
    """
    Attributes:
        command (str): The program to run, looked up on `PATH` when it has no slash.
        args (list[str] | Unset):
        env (StartProcessRequestEnv | Unset): Variables applied to the process environment.
        working_dir (None | str | Unset):
        user (ProcessUserIds | ProcessUserName | str | Unset): Who the process runs as: a user name, a UID string,
            `"uid:gid"`, `{"name": ...}` or `{"uid": ..., "gid": ...}`. Defaults to the sandbox's user (`tl-user` on
            Tensorlake).
        stdin_mode (StdinMode | Unset): `pipe` opens stdin for writing; `closed` (the default) gives the process no
            stdin.
        stdout_mode (OutputMode | Unset): `capture` (the default) keeps the lines for the output endpoints; `discard`
            drops them.
        stderr_mode (OutputMode | Unset): `capture` (the default) keeps the lines for the output endpoints; `discard`
            drops them.
        name (str | Unset): A managed process's name: any characters except `/`, not empty, not all digits (digits mean
            a PID), and not `run`. Giving a name, a `restart` policy or a `health_check` makes the process managed
            (supervised by the sandbox).
        restart (RestartPolicyConfig | Unset): When a managed process is started again after it ends: `never`,
            `on_failure` (a non-zero exit, a signal, or failed health checks; the default) or `always`. The wait before a
            restart starts at `initial_backoff_ms` and doubles up to `max_backoff_ms`; `max_restarts` (null: no limit) caps
            the restarts.
        health_check (ProcessHealthCheck | Unset): A check run against the process on the sandbox's loopback interface:
            `http` is a GET of `path` on `port` that must answer 2xx or 3xx, `tcp` a connection to `port`. After
            `failure_threshold` failures in a row the process is unhealthy and is restarted per its policy.
    """

    command: str
    args: list[str] | Unset = UNSET
    env: StartProcessRequestEnv | Unset = UNSET
    working_dir: None | str | Unset = UNSET
    user: ProcessUserIds | ProcessUserName | str | Unset = UNSET
    stdin_mode: StdinMode | Unset = UNSET
    stdout_mode: OutputMode | Unset = UNSET
    stderr_mode: OutputMode | Unset = UNSET
    name: str | Unset = UNSET
    restart: RestartPolicyConfig | Unset = UNSET
    health_check: ProcessHealthCheck | Unset = UNSET
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

        stdin_mode: str | Unset = UNSET
        if not isinstance(self.stdin_mode, Unset):
            stdin_mode = self.stdin_mode.value

        stdout_mode: str | Unset = UNSET
        if not isinstance(self.stdout_mode, Unset):
            stdout_mode = self.stdout_mode.value

        stderr_mode: str | Unset = UNSET
        if not isinstance(self.stderr_mode, Unset):
            stderr_mode = self.stderr_mode.value

        name = self.name

        restart: dict[str, Any] | Unset = UNSET
        if not isinstance(self.restart, Unset):
            restart = self.restart.to_dict()

        health_check: dict[str, Any] | Unset = UNSET
        if not isinstance(self.health_check, Unset):
            health_check = self.health_check.to_dict()

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
        if stdin_mode is not UNSET:
            field_dict["stdin_mode"] = stdin_mode
        if stdout_mode is not UNSET:
            field_dict["stdout_mode"] = stdout_mode
        if stderr_mode is not UNSET:
            field_dict["stderr_mode"] = stderr_mode
        if name is not UNSET:
            field_dict["name"] = name
        if restart is not UNSET:
            field_dict["restart"] = restart
        if health_check is not UNSET:
            field_dict["health_check"] = health_check

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        from ..models.process_health_check import ProcessHealthCheck  # noqa: PLC0415
        from ..models.process_user_ids import ProcessUserIds  # noqa: PLC0415
        from ..models.process_user_name import ProcessUserName  # noqa: PLC0415
        from ..models.restart_policy_config import RestartPolicyConfig  # noqa: PLC0415
        from ..models.start_process_request_env import StartProcessRequestEnv  # noqa: PLC0415

        d = dict(src_dict)
        command = d.pop("command")

        args = cast(list[str], d.pop("args", UNSET))

        _env = d.pop("env", UNSET)
        env: StartProcessRequestEnv | Unset
        if isinstance(_env, Unset):
            env = UNSET
        else:
            env = StartProcessRequestEnv.from_dict(_env)

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

        _stdin_mode = d.pop("stdin_mode", UNSET)
        stdin_mode: StdinMode | Unset
        if isinstance(_stdin_mode, Unset):
            stdin_mode = UNSET
        else:
            stdin_mode = StdinMode(_stdin_mode)

        _stdout_mode = d.pop("stdout_mode", UNSET)
        stdout_mode: OutputMode | Unset
        if isinstance(_stdout_mode, Unset):
            stdout_mode = UNSET
        else:
            stdout_mode = OutputMode(_stdout_mode)

        _stderr_mode = d.pop("stderr_mode", UNSET)
        stderr_mode: OutputMode | Unset
        if isinstance(_stderr_mode, Unset):
            stderr_mode = UNSET
        else:
            stderr_mode = OutputMode(_stderr_mode)

        name = d.pop("name", UNSET)

        _restart = d.pop("restart", UNSET)
        restart: RestartPolicyConfig | Unset
        if isinstance(_restart, Unset):
            restart = UNSET
        else:
            restart = RestartPolicyConfig.from_dict(_restart)

        _health_check = d.pop("health_check", UNSET)
        health_check: ProcessHealthCheck | Unset
        if isinstance(_health_check, Unset):
            health_check = UNSET
        else:
            health_check = ProcessHealthCheck.from_dict(_health_check)

        start_process_request = cls(
            command=command,
            args=args,
            env=env,
            working_dir=working_dir,
            user=user,
            stdin_mode=stdin_mode,
            stdout_mode=stdout_mode,
            stderr_mode=stderr_mode,
            name=name,
            restart=restart,
            health_check=health_check,
        )

        start_process_request.additional_properties = d
        return start_process_request

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
