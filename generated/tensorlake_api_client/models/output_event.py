from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..types import UNSET, Unset

T = TypeVar("T", bound="OutputEvent")


@_attrs_define
class OutputEvent:
    """The data of an `output` event on a follow or run stream. The local sandbox adds (clients that ignore them are
    unaffected): the SSE `id` of each `output` event is the line's position in the stream followed (0, 1, 2, ...; in the
    combined output on `/output/follow` and run streams), and a follow request with `Last-Event-ID` resumes right after
    that line; lines dropped from the capture buffer before a follower read them are announced where they were by an
    `event: gap` with data `{"missing", "from", "to"}` (positions); a line longer than 1 MiB (1,048,576 bytes) is sent
    as pieces, each but the last with `"continued": true` in its data, to be joined with the stream's next line (a
    client that ignores the field sees the line split, never silently joined or cut).

        Attributes:
            line (str): One line of output, without its line terminator.
            timestamp (int): Unix time in milliseconds (0 on some replayed lines).
            stream (str | Unset): `stdout` or `stderr`; only on combined output and run streams.
    """

    line: str
    timestamp: int
    stream: str | Unset = UNSET
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        line = self.line

        timestamp = self.timestamp

        stream = self.stream

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update(
            {
                "line": line,
                "timestamp": timestamp,
            }
        )
        if stream is not UNSET:
            field_dict["stream"] = stream

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        line = d.pop("line")

        timestamp = d.pop("timestamp")

        stream = d.pop("stream", UNSET)

        output_event = cls(
            line=line,
            timestamp=timestamp,
            stream=stream,
        )

        output_event.additional_properties = d
        return output_event

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
