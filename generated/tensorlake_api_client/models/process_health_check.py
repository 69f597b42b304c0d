from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.process_health_check_type import ProcessHealthCheckType
from ..types import UNSET, Unset

T = TypeVar("T", bound="ProcessHealthCheck")


@_attrs_define
class ProcessHealthCheck:
    """A check run against the process on the sandbox's loopback interface: `http` is a GET of `path` on `port` that must
    answer 2xx or 3xx, `tcp` a connection to `port`. After `failure_threshold` failures in a row the process is
    unhealthy and is restarted per its policy.

        Attributes:
            type_ (ProcessHealthCheckType):
            port (int):
            path (None | str | Unset): The HTTP check's path (default `/`); starts with `/`, no spaces or line breaks.
            initial_delay_ms (int | Unset):  Default: 5000.
            interval_ms (int | Unset):  Default: 1000.
            timeout_ms (int | Unset):  Default: 500.
            failure_threshold (int | Unset):  Default: 3.
    """

    type_: ProcessHealthCheckType
    port: int
    path: None | str | Unset = UNSET
    initial_delay_ms: int | Unset = 5000
    interval_ms: int | Unset = 1000
    timeout_ms: int | Unset = 500
    failure_threshold: int | Unset = 3
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        type_ = self.type_.value

        port = self.port

        path: None | str | Unset
        if isinstance(self.path, Unset):
            path = UNSET
        else:
            path = self.path

        initial_delay_ms = self.initial_delay_ms

        interval_ms = self.interval_ms

        timeout_ms = self.timeout_ms

        failure_threshold = self.failure_threshold

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "type": type_,
                "port": port,
            }
        )
        if path is not UNSET:
            field_dict["path"] = path
        if initial_delay_ms is not UNSET:
            field_dict["initial_delay_ms"] = initial_delay_ms
        if interval_ms is not UNSET:
            field_dict["interval_ms"] = interval_ms
        if timeout_ms is not UNSET:
            field_dict["timeout_ms"] = timeout_ms
        if failure_threshold is not UNSET:
            field_dict["failure_threshold"] = failure_threshold

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        type_ = ProcessHealthCheckType(d.pop("type"))

        port = d.pop("port")

        def _parse_path(data: object) -> None | str | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(None | str | Unset, data)

        path = _parse_path(d.pop("path", UNSET))

        initial_delay_ms = d.pop("initial_delay_ms", UNSET)

        interval_ms = d.pop("interval_ms", UNSET)

        timeout_ms = d.pop("timeout_ms", UNSET)

        failure_threshold = d.pop("failure_threshold", UNSET)

        process_health_check = cls(
            type_=type_,
            port=port,
            path=path,
            initial_delay_ms=initial_delay_ms,
            interval_ms=interval_ms,
            timeout_ms=timeout_ms,
            failure_threshold=failure_threshold,
        )

        process_health_check.additional_properties = d
        return process_health_check

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
