from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

from attrs import define as _attrs_define
from attrs import field as _attrs_field

from ..models.restart_policy_config_policy import RestartPolicyConfigPolicy
from ..types import UNSET, Unset

T = TypeVar("T", bound="RestartPolicyConfig")


@_attrs_define
class RestartPolicyConfig:
    """When a managed process is started again after it ends: `never`, `on_failure` (a non-zero exit, a signal, or failed
    health checks; the default) or `always`. The wait before a restart starts at `initial_backoff_ms` and doubles up to
    `max_backoff_ms`; `max_restarts` (null: no limit) caps the restarts.

        Attributes:
            policy (RestartPolicyConfigPolicy | Unset):  Default: RestartPolicyConfigPolicy.ON_FAILURE.
            max_restarts (int | None | Unset):
            initial_backoff_ms (int | Unset):  Default: 500.
            max_backoff_ms (int | Unset):  Default: 30000.
    """

    policy: RestartPolicyConfigPolicy | Unset = RestartPolicyConfigPolicy.ON_FAILURE
    max_restarts: int | None | Unset = UNSET
    initial_backoff_ms: int | Unset = 500
    max_backoff_ms: int | Unset = 30000
    additional_properties: dict[str, Any] = _attrs_field(init=False, factory=dict)

    def to_dict(self) -> dict[str, Any]:
        policy: str | Unset = UNSET
        if not isinstance(self.policy, Unset):
            policy = self.policy.value

        max_restarts: int | None | Unset
        if isinstance(self.max_restarts, Unset):
            max_restarts = UNSET
        else:
            max_restarts = self.max_restarts

        initial_backoff_ms = self.initial_backoff_ms

        max_backoff_ms = self.max_backoff_ms

        field_dict: dict[str, Any] = {}
        field_dict.update(self.additional_properties)
        field_dict.update({})
        if policy is not UNSET:
            field_dict["policy"] = policy
        if max_restarts is not UNSET:
            field_dict["max_restarts"] = max_restarts
        if initial_backoff_ms is not UNSET:
            field_dict["initial_backoff_ms"] = initial_backoff_ms
        if max_backoff_ms is not UNSET:
            field_dict["max_backoff_ms"] = max_backoff_ms

        return field_dict

    @classmethod
    def from_dict(cls: type[T], src_dict: Mapping[str, Any]) -> T:
        d = dict(src_dict)
        _policy = d.pop("policy", UNSET)
        policy: RestartPolicyConfigPolicy | Unset
        if isinstance(_policy, Unset):
            policy = UNSET
        else:
            policy = RestartPolicyConfigPolicy(_policy)

        def _parse_max_restarts(data: object) -> int | None | Unset:
            if data is None:
                return data
            if isinstance(data, Unset):
                return data
            return cast(int | None | Unset, data)

        max_restarts = _parse_max_restarts(d.pop("max_restarts", UNSET))

        initial_backoff_ms = d.pop("initial_backoff_ms", UNSET)

        max_backoff_ms = d.pop("max_backoff_ms", UNSET)

        restart_policy_config = cls(
            policy=policy,
            max_restarts=max_restarts,
            initial_backoff_ms=initial_backoff_ms,
            max_backoff_ms=max_backoff_ms,
        )

        restart_policy_config.additional_properties = d
        return restart_policy_config

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
