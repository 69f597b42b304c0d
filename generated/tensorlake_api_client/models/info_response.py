from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="InfoResponse")


@_attrs_define
class InfoResponse:
    """
    Attributes:
        version (str):
        uptime_secs (float | Unset):
        running_processes (int | Unset):
        total_processes (int | Unset):
    """

    version: str
    uptime_secs: float | Unset = UNSET
    running_processes: int | Unset = UNSET
    total_processes: int | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        version = self.version

        uptime_secs = self.uptime_secs

        running_processes = self.running_processes

        total_processes = self.total_processes

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "version": version,
            }
        )
        if uptime_secs is not UNSET:
            field_dict["uptime_secs"] = uptime_secs
        if running_processes is not UNSET:
            field_dict["running_processes"] = running_processes
        if total_processes is not UNSET:
            field_dict["total_processes"] = total_processes

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        version = d.pop("version")

        uptime_secs = d.pop("uptime_secs", UNSET)

        running_processes = d.pop("running_processes", UNSET)

        total_processes = d.pop("total_processes", UNSET)

        info_response = cls(
            version=version,
            uptime_secs=uptime_secs,
            running_processes=running_processes,
            total_processes=total_processes,
        )

        info_response.additional_properties = d
        return info_response

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
