from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="RunStartEvent")


@_attrs_define
class RunStartEvent:
    """The first event of a run stream.

    Attributes:
        pid (int):
        handle (int | Unset):
        started_at (int | Unset): Unix time in milliseconds.
    """

    pid: int
    handle: int | Unset = UNSET
    started_at: int | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        pid = self.pid

        handle = self.handle

        started_at = self.started_at

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "pid": pid,
            }
        )
        if handle is not UNSET:
            field_dict["handle"] = handle
        if started_at is not UNSET:
            field_dict["started_at"] = started_at

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        pid = d.pop("pid")

        handle = d.pop("handle", UNSET)

        started_at = d.pop("started_at", UNSET)

        run_start_event = cls(
            pid=pid,
            handle=handle,
            started_at=started_at,
        )

        run_start_event.additional_properties = d
        return run_start_event

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
