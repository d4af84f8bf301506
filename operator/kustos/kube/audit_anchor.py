"""Reads and writes the `AuditAnchor` object (kustos.io/v1alpha1) that anchors the audit
chain outside the store.

Only status matters; it is written guarded by the resourceVersion that was read, so two
replicas publishing at once cannot overwrite a newer anchor with an older one unnoticed
(the loser gets ConflictError and re-reads). Objects are plain dicts; errors name the
object, never data (an anchor holds hashes and signatures, no values).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from kustos.errors import ConflictError, ServerError

__all__ = ["AnchorGateway", "StoredAnchor"]

GROUP, VERSION, PLURAL, KIND = "kustos.io", "v1alpha1", "auditanchors", "AuditAnchor"


@dataclass(frozen=True)
class StoredAnchor:
    status: dict[str, Any]
    resource_version: str


class AnchorGateway:
    def __init__(self, api: client.ApiClient, namespace: str, name: str) -> None:
        self._custom = client.CustomObjectsApi(api)
        self.namespace = namespace
        self.name = name

    @property
    def ref(self) -> str:
        return f"AuditAnchor {self.namespace}/{self.name}"

    def read(self) -> StoredAnchor | None:
        """The anchor's status, or None when the object does not exist."""
        try:
            obj = self._custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise self._error("read", exc) from None
        return StoredAnchor(dict(obj.get("status") or {}), str(obj["metadata"]["resourceVersion"]))

    def create(self) -> StoredAnchor:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {"app.kubernetes.io/part-of": "kustos"},
            },
            "spec": {},
        }
        try:
            obj = self._custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, body
            )
        except ApiException as exc:
            if exc.status == 409:
                raise ConflictError(f"{self.ref} was created meanwhile") from None
            raise self._error("create", exc) from None
        return StoredAnchor({}, str(obj["metadata"]["resourceVersion"]))

    def write_status(self, status: dict[str, Any], resource_version: str) -> None:
        """Replace the status, only if the object is still at `resource_version`."""
        body = {"metadata": {"resourceVersion": resource_version}, "status": status}
        try:
            self._custom.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                self.namespace,
                PLURAL,
                self.name,
                body,
                _content_type="application/merge-patch+json",
            )
        except ApiException as exc:
            if exc.status == 409:
                raise ConflictError(f"{self.ref} changed meanwhile") from None
            raise self._error("update the status of", exc) from None

    def _error(self, verb: str, exc: ApiException) -> ServerError:
        return ServerError(f"cannot {verb} {self.ref}: HTTP {exc.status} {exc.reason}")
