"""Projects a secret version into the native Secret that pods mount.

Owns the shape of the projected Secret (labels, annotations, ownerReference, data layout)
and the rules for writing it: create when absent, leave alone when it matches, restore it
when someone edited it (drift), and never touch a Secret that Kustos does not own.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from kustos.errors import ConflictError, InvalidParameterError
from kustos.kube.events import ObjectRef
from kustos.kube.secrets import SecretGateway
from kustos.models.sensitive import SecretValue
from kustos.models.spec import TemplateSpec
from kustos.services.consumers.templates import TemplateRenderer, template_data

__all__ = [
    "ANNOTATION_ARN",
    "ANNOTATION_VERSION",
    "LABEL_MANAGED_BY",
    "LABEL_VERSION",
    "Projection",
    "ProjectionOutcome",
    "ProjectionService",
    "value_to_data",
]

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_VERSION = "kustos.io/version-id"
ANNOTATION_VERSION = "kustos.io/version-id"
ANNOTATION_ARN = "kustos.io/secret-arn"
#: The key that holds a value that is not a JSON object (plain text or binary).
PLAIN_VALUE_KEY = "value"


class ProjectionOutcome(StrEnum):
    UNCHANGED = "Unchanged"
    CREATED = "Created"
    UPDATED = "Updated"  # a new version was projected
    DRIFT_CORRECTED = "DriftCorrected"  # someone edited or deleted it; restored


@dataclass(frozen=True)
class Projection:
    """What to project: the owner, the target, and the version's id and value."""

    owner: ObjectRef
    target_name: str
    target_type: str
    arn: str
    version_id: str
    value: SecretValue
    static_data: dict[str, str]
    labels: dict[str, str]
    annotations: dict[str, str]
    #: When set, the data is rendered from it (a failed render raises before any write).
    template: TemplateSpec | None = None
    #: Workloads (kind, name) named in the spec to restart when the data changes.
    restart_on_change: tuple[tuple[str, str], ...] = ()


#: Told about each projection that put new data into an existing Secret.
ChangeListener = Callable[[Projection], None]


def value_to_data(value: SecretValue) -> dict[str, bytes]:
    """A JSON-object value becomes one key per field; anything else one key `value`."""
    mapping = value.as_mapping()
    if mapping is None:
        return {PLAIN_VALUE_KEY: value.reveal_bytes()}
    return {
        key: (item if isinstance(item, str) else json.dumps(item)).encode("utf-8")
        for key, item in mapping.items()
    }


class ProjectionService:
    def __init__(
        self,
        secrets: SecretGateway,
        renderer: TemplateRenderer | None = None,
        on_change: ChangeListener | None = None,
    ) -> None:
        self._secrets = secrets
        self._renderer = renderer
        self._on_change = on_change

    def desired(self, p: Projection) -> dict[str, Any]:
        data = {k: v.encode("utf-8") for k, v in p.static_data.items()}
        data.update(value_to_data(p.value))
        if p.template is not None:
            if self._renderer is None:
                self._renderer = TemplateRenderer()
            data = template_data(self._renderer, p.template, p.value, p.static_data, data)
        for key in data:
            if not key or len(key) > 253:
                raise InvalidParameterError(f"the value has a key unusable in a Secret: {key!r}")
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": p.target_name,
                "namespace": p.owner.namespace,
                "labels": {**p.labels, LABEL_MANAGED_BY: "kustos", LABEL_VERSION: p.version_id},
                "annotations": {
                    **p.annotations,
                    ANNOTATION_VERSION: p.version_id,
                    ANNOTATION_ARN: p.arn,
                },
                "ownerReferences": [
                    {
                        "apiVersion": p.owner.api_version,
                        "kind": p.owner.kind,
                        "name": p.owner.name,
                        "uid": p.owner.uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "type": p.target_type,
            "data": {k: base64.b64encode(v).decode("ascii") for k, v in sorted(data.items())},
        }

    def project(self, p: Projection) -> ProjectionOutcome:
        desired = self.desired(p)
        namespace, name = p.owner.namespace, p.target_name
        existing = self._secrets.get(namespace, name)
        if existing is None:
            self._secrets.create(namespace, desired)
            return ProjectionOutcome.CREATED
        if not _owned_by(existing, p.owner.uid):
            raise ConflictError(
                f"Secret {namespace}/{name} exists and is not owned by ManagedSecret "
                f"{p.owner.name}; Kustos will not overwrite it (rename target.name or remove it)"
            )
        if _matches(existing, desired):
            return ProjectionOutcome.UNCHANGED
        was_version = (existing.get("metadata", {}).get("annotations") or {}).get(
            ANNOTATION_VERSION
        )
        if existing.get("type", "Opaque") != desired["type"]:
            # The type of a Secret is immutable: replace the object.
            self._secrets.delete(namespace, name, uid=existing["metadata"]["uid"])
            self._secrets.create(namespace, desired)
        else:
            merged = dict(desired)
            merged["metadata"] = {
                **existing["metadata"],
                "labels": {
                    **(existing["metadata"].get("labels") or {}),
                    **desired["metadata"]["labels"],
                },
                "annotations": {
                    **(existing["metadata"].get("annotations") or {}),
                    **desired["metadata"]["annotations"],
                },
                "ownerReferences": desired["metadata"]["ownerReferences"],
            }
            self._secrets.replace(namespace, name, merged)
        if was_version == p.version_id:
            return ProjectionOutcome.DRIFT_CORRECTED
        if self._on_change is not None and (existing.get("data") or {}) != desired["data"]:
            self._on_change(p)
        return ProjectionOutcome.UPDATED

    def exists(self, namespace: str, name: str, owner_uid: str) -> bool:
        existing = self._secrets.get(namespace, name)
        return existing is not None and _owned_by(existing, owner_uid)


def _owned_by(obj: dict[str, Any], uid: str) -> bool:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid and ref.get("controller") for ref in refs)


def _matches(existing: dict[str, Any], desired: dict[str, Any]) -> bool:
    meta, want = existing.get("metadata", {}), desired["metadata"]
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    return (
        existing.get("type", "Opaque") == desired["type"]
        and (existing.get("data") or {}) == desired["data"]
        and all(labels.get(k) == v for k, v in want["labels"].items())
        and all(annotations.get(k) == v for k, v in want["annotations"].items())
    )
