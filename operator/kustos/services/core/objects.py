"""A ManagedSecret as the services see it, its spec as a model, and the reason an error
gives a condition: the vocabulary the controller and rotation share."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pydantic

from kustos.errors import (
    ConflictError,
    DecryptionFailure,
    InvalidParameterError,
    KeyringError,
    KustosError,
    SourceError,
    SourceNotAllowedError,
    SourceNotFoundError,
    StoreError,
    TemplateError,
)
from kustos.kube.events import ObjectRef
from kustos.models.reasons import Reason
from kustos.models.spec import ManagedSecretSpec

__all__ = ["API_VERSION", "KIND", "ManagedObject", "parse_spec", "reason_for"]

API_VERSION = "kustos.io/v1alpha1"
KIND = "ManagedSecret"


@dataclass(frozen=True)
class ManagedObject:
    namespace: str
    name: str
    uid: str
    generation: int
    spec: dict[str, Any]
    status: dict[str, Any] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    deleting: bool = False

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ManagedObject:
        """From a ManagedSecret as the API server sends it."""
        meta = body["metadata"]
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta.get("uid", ""),
            generation=int(meta.get("generation") or 0),
            spec=dict(body.get("spec") or {}),
            status=dict(body.get("status") or {}),
            annotations=dict(meta.get("annotations") or {}),
            deleting=bool(meta.get("deletionTimestamp")),
        )

    @property
    def ref(self) -> ObjectRef:
        return ObjectRef(API_VERSION, KIND, self.namespace, self.name, self.uid)


def parse_spec(raw: dict[str, Any]) -> ManagedSecretSpec:
    """The spec as a model; errors name fields and problems, never input values."""
    try:
        return ManagedSecretSpec.model_validate(raw)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'spec'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        )
        raise InvalidParameterError(f"invalid spec: {problems}") from None


def reason_for(error: KustosError) -> Reason:
    """The condition reason for an error, by its type (never by its message)."""
    if isinstance(error, TemplateError):
        return Reason.TEMPLATE_FAILED
    if isinstance(error, SourceNotAllowedError):
        return Reason.SOURCE_NOT_ALLOWED
    if isinstance(error, SourceNotFoundError):
        return Reason.SOURCE_NOT_FOUND
    if isinstance(error, SourceError):
        return Reason.SOURCE_INVALID
    if isinstance(error, ConflictError):
        return Reason.TARGET_CONFLICT
    if isinstance(error, DecryptionFailure):
        return Reason.DECRYPTION_FAILED
    if isinstance(error, KeyringError):
        return Reason.KEYRING_ERROR
    if isinstance(error, StoreError):
        return Reason.STORE_ERROR
    if isinstance(error, InvalidParameterError):
        return Reason.INVALID_SPEC
    return Reason.RECONCILE_FAILED
