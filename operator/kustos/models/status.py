"""The ManagedSecret status as a pydantic model, and the one function that sets a condition.

The per-object controller (`kustos.services.controller.controller`) starts from the status
the object has, lets the reconciler and the rotation service fill in their parts, and hands the
adapter `patch()`: only the keys whose value changed, as a JSON merge patch wants them
(None removes a key). Fields keep the CRD's camelCase names on the wire. Unknown keys an
older operator wrote are kept as they are (extra="allow"). No I/O here; the clock is a
parameter.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from kustos.models.reasons import ConditionType, Reason

__all__ = ["Condition", "ManagedSecretStatus", "iso", "set_condition"]

#: Longest condition message (the CRD's limit).
MESSAGE_MAX = 1024


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Condition(BaseModel):
    """A Kubernetes-convention condition."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    observed_generation: int = Field(0, alias="observedGeneration")
    last_transition_time: str | None = Field(None, alias="lastTransitionTime")


class ManagedSecretStatus(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow", validate_assignment=True)

    observed_generation: int | None = Field(None, alias="observedGeneration")
    arn: str | None = None
    secret_name: str | None = Field(None, alias="secretName")
    current_version_id: str | None = Field(None, alias="currentVersionId")
    versions: list[dict[str, Any]] | None = None
    projected_secret: str | None = Field(None, alias="projectedSecret")
    last_rotated_at: str | None = Field(None, alias="lastRotatedAt")
    next_rotation_at: str | None = Field(None, alias="nextRotationAt")
    rotation: dict[str, Any] | None = None
    #: The last `kustos.io/rollback` request handled (see services/rotation's rollback).
    rollback: dict[str, Any] | None = None
    #: Where target.shareWith copied the Secret (see services/consumers/sharing).
    sharing: dict[str, Any] | None = None
    conditions: list[Condition] = Field(default_factory=list)

    @classmethod
    def from_raw(cls, raw: dict[str, Any] | None) -> ManagedSecretStatus:
        """The object's status as it is; keys that do not parse are dropped (and rewritten)."""
        try:
            return cls.model_validate(dict(raw or {}))
        except pydantic.ValidationError:
            fields = set(cls.model_fields) | {f.alias for f in cls.model_fields.values()}
            kept = {k: v for k, v in (raw or {}).items() if k not in fields}
            return cls.model_validate(kept)

    def condition(self, ctype: ConditionType) -> Condition | None:
        return next((c for c in self.conditions if c.type == str(ctype)), None)

    def drop_condition(self, ctype: ConditionType) -> None:
        if self.condition(ctype) is not None:
            self.conditions = [c for c in self.conditions if c.type != str(ctype)]

    def to_raw(self) -> dict[str, Any]:
        """The fields that were read or set, as the API server holds them."""
        return self.model_dump(by_alias=True, exclude_unset=True, mode="json")

    def patch(self, current: dict[str, Any] | None) -> dict[str, Any]:
        """The merge patch from `current` to this status: changed keys only."""
        current = current or {}
        return {k: v for k, v in self.to_raw().items() if current.get(k) != v}


def set_condition(
    status: ManagedSecretStatus,
    ctype: ConditionType,
    ok: bool,
    reason: Reason,
    message: str,
    *,
    generation: int,
    now: datetime,
) -> Condition:
    """Set one condition (the only place conditions are written). lastTransitionTime moves
    only when the condition's status changes; Ready comes first, others keep their order."""
    value: Literal["True", "False"] = "True" if ok else "False"
    old = status.condition(ctype)
    transition = old.last_transition_time if old is not None and old.status == value else None
    new = Condition(
        type=str(ctype),
        status=value,
        reason=str(reason),
        message=message[:MESSAGE_MAX],
        observed_generation=generation,
        last_transition_time=transition or iso(now),
    )
    others = [c for c in status.conditions if c.type != str(ctype)]
    status.conditions = [new, *others] if ctype is ConditionType.READY else [*others, new]
    return new
