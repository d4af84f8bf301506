"""Copies of a projected Secret in other namespaces, with the consent of both sides.

The owner's side is the ManagedSecret's `target.shareWith`: namespaces by name and/or a
`namespaceSelector` (`matchLabels`). The target's side is a label on the target namespace,
`shares.kustos.io/<owner namespace>: accept`, which only whoever may label namespaces can
set (a cluster-level decision, as the consent of a RoleBinding would be). A copy is made
only where both hold; when either is withdrawn (the name leaves the list, the namespace no
longer matches, the label goes, the ManagedSecret is deleted) the copy is deleted.

A copy has the projected Secret's type, data, labels and version annotations, and no
ownerReference (Kubernetes does not allow one across namespaces): it is marked
`kustos.io/shared-from: <namespace>/<name>/<uid>` and Kustos replaces or deletes only
Secrets carrying its own mark; a foreign Secret of that name is a conflict, left alone. The
namespaces holding copies are remembered in the status (`sharing.namespaces`), so removal
needs no listing of Secrets: the operator keeps its rule of never listing or watching them.
Consent is re-read on every pass of the object (one namespace GET per target).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from kustos.kube.events import ObjectRef
from kustos.models.spec import ShareSpec

__all__ = ["ANNOTATION_SHARED_FROM", "CONSENT_PREFIX", "ShareResult", "SharingService"]

ANNOTATION_SHARED_FROM = "kustos.io/shared-from"
CONSENT_PREFIX = "shares.kustos.io/"
_CONSENT_VALUES = ("accept", "true")

Obj = dict[str, Any]


class Secrets(Protocol):
    def get(self, namespace: str, name: str) -> Obj | None: ...
    def create(self, namespace: str, body: Obj) -> Obj: ...
    def replace(self, namespace: str, name: str, body: Obj) -> Obj: ...
    def delete(self, namespace: str, name: str, uid: str | None = None) -> bool: ...


class Namespaces(Protocol):
    def get(self, name: str) -> Obj | None: ...
    def list(self, selector: str) -> list[Obj]: ...


@dataclass
class ShareResult:
    namespaces: list[str] = field(default_factory=list)
    awaiting_consent: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    #: What changed, for Events: (namespace, "created" | "updated" | "removed").
    changes: list[tuple[str, str]] = field(default_factory=list)

    def status(self) -> dict[str, list[str]] | None:
        raw = {
            "namespaces": self.namespaces,
            "awaitingConsent": self.awaiting_consent,
            "conflicts": self.conflicts,
        }
        return raw if any(raw.values()) else None


def mark(owner: ObjectRef) -> str:
    return f"{owner.namespace}/{owner.name}/{owner.uid}"


class SharingService:
    def __init__(self, secrets: Secrets, namespaces: Namespaces) -> None:
        self._secrets, self._namespaces = secrets, namespaces

    def wanted(self, owner: ObjectRef, share: ShareSpec | None) -> list[str]:
        """The namespaces the owner lists or selects (not yet checked for consent)."""
        if share is None:
            return []
        names = set(share.namespaces)
        selector = share.namespace_selector.match_labels if share.namespace_selector else {}
        if selector:
            query = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
            names |= {n["metadata"]["name"] for n in self._namespaces.list(query)}
        names.discard(owner.namespace)
        return sorted(names)

    def consents(self, owner: ObjectRef, namespace: str) -> bool:
        found = self._namespaces.get(namespace)
        labels = ((found or {}).get("metadata") or {}).get("labels") or {}
        return labels.get(CONSENT_PREFIX + owner.namespace) in _CONSENT_VALUES

    def sync(
        self,
        owner: ObjectRef,
        share: ShareSpec | None,
        target: str,
        desired: Obj | None,
        holding: Iterable[str],
    ) -> ShareResult:
        """Make the copies match `desired` (the projected Secret's body; None: remove all)
        where both sides consent, and remove them from `holding` namespaces that no longer
        qualify."""
        result = ShareResult()
        for namespace in self.wanted(owner, share) if desired is not None else []:
            if not self.consents(owner, namespace):
                result.awaiting_consent.append(namespace)
                continue
            done = self._put(owner, namespace, desired)  # type: ignore[arg-type]
            if done is None:
                result.conflicts.append(namespace)
                continue
            result.namespaces.append(namespace)
            if done:
                result.changes.append((namespace, done))
        for namespace in sorted(set(holding) - set(result.namespaces)):
            if self._remove(owner, namespace, target):
                result.changes.append((namespace, "removed"))
        return result

    def _put(self, owner: ObjectRef, namespace: str, desired: Obj) -> str | None:
        """ "created", "updated", "" (unchanged), or None (a foreign Secret is in the way)."""
        name = desired["metadata"]["name"]
        body = copy.deepcopy(desired)
        meta = body["metadata"]
        meta["namespace"] = namespace
        meta.pop("ownerReferences", None)
        meta["annotations"] = {
            **(meta.get("annotations") or {}),
            ANNOTATION_SHARED_FROM: mark(owner),
        }
        existing = self._secrets.get(namespace, name)
        if existing is None:
            self._secrets.create(namespace, body)
            return "created"
        if not _ours(existing, owner):
            return None
        if (existing.get("type", "Opaque"), existing.get("data") or {}) == (
            body.get("type", "Opaque"),
            body.get("data") or {},
        ) and all(
            (existing["metadata"].get("annotations") or {}).get(k) == v
            for k, v in meta["annotations"].items()
        ):
            return ""
        if existing.get("type", "Opaque") != body.get("type", "Opaque"):
            self._secrets.delete(namespace, name, uid=existing["metadata"].get("uid"))
            self._secrets.create(namespace, body)
        else:
            meta["resourceVersion"] = existing["metadata"].get("resourceVersion")
            meta["uid"] = existing["metadata"].get("uid")
            self._secrets.replace(namespace, name, body)
        return "updated"

    def _remove(self, owner: ObjectRef, namespace: str, name: str) -> bool:
        existing = self._secrets.get(namespace, name)
        if existing is None or not _ours(existing, owner):
            return False
        return self._secrets.delete(namespace, name, uid=existing["metadata"].get("uid"))


def _ours(existing: Obj, owner: ObjectRef) -> bool:
    annotations = (existing.get("metadata") or {}).get("annotations") or {}
    return annotations.get(ANNOTATION_SHARED_FROM) == mark(owner)
