"""Reads and writes ManagedSecret objects (kustos.io/v1alpha1) through the Kubernetes API.

Used by the Secrets Manager API so a secret created there exists as a ManagedSecret (one
source of truth), by deletion/restore, and by the operator's workers (status patches; a
paged listing for the orphan sweep). Objects are plain dicts; errors name
objects, never data (ManagedSecrets hold no values anyway).
"""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from kustos.errors import ConflictError, ServerError
from kustos.models.fencing import check_fence

__all__ = ["GROUP", "PLURAL", "VERSION", "ManagedObjectGateway"]

GROUP, VERSION, PLURAL = "kustos.io", "v1alpha1", "managedsecrets"
Obj = dict[str, Any]


class ManagedObjectGateway:
    def __init__(self, api: client.ApiClient) -> None:
        self._custom = client.CustomObjectsApi(api)

    def list_all(self, page_size: int = 500) -> list[Obj]:
        """Every ManagedSecret in the cluster, in pages of `page_size` (limit/continue), for
        the rare complete listing (the orphan sweep); the operator otherwise relies on its
        watch."""
        items: list[Obj] = []
        token: str | None = None
        while True:
            try:
                result = self._custom.list_cluster_custom_object(
                    GROUP, VERSION, PLURAL, limit=page_size, _continue=token
                )
            except ApiException as exc:
                raise ServerError(f"cannot list ManagedSecrets: HTTP {exc.status}") from None
            items.extend(result.get("items", []))
            token = (result.get("metadata") or {}).get("continue") or None
            if token is None:
                return items

    def count(self) -> int | None:
        """How many ManagedSecrets the cluster holds, from one LIST of a single item (its
        `remainingItemCount`); None when the apiserver does not say."""
        try:
            result = self._custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, limit=1)
        except ApiException as exc:
            raise ServerError(f"cannot list ManagedSecrets: HTTP {exc.status}") from None
        meta = result.get("metadata") or {}
        items = len(result.get("items", []))
        if not meta.get("continue"):
            return items
        remaining = meta.get("remainingItemCount")
        return items + remaining if isinstance(remaining, int) else None

    def get(self, namespace: str, name: str) -> Obj | None:
        try:
            found: Obj = self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _error("read", namespace, name, exc) from None
        return found

    def create(self, namespace: str, name: str, spec: Obj, annotations: dict[str, str]) -> Obj:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ManagedSecret",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": spec,
        }
        try:
            created: Obj = self._custom.create_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, body
            )
        except ApiException as exc:
            if exc.status == 409:
                raise ConflictError(f"ManagedSecret {namespace}/{name} exists already") from None
            raise _error("create", namespace, name, exc) from None
        return created

    def merge_patch(
        self, namespace: str, name: str, patch: Obj, field_manager: str | None = None
    ) -> Obj | None:
        """JSON merge patch (None values delete keys); the patched object (with its new
        metadata.generation), or None when the object is gone. `field_manager` names the
        writer in managedFields."""
        try:
            patched: Obj = self._custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                patch,
                field_manager=field_manager,
                _content_type="application/merge-patch+json",
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _error("patch", namespace, name, exc) from None
        return patched

    def patch_status(self, namespace: str, name: str, status: Obj) -> None:
        """Merge `status` into the status subresource; nothing when the object is gone."""
        check_fence()  # leader work only while the Lease holds (kustos.models.fencing)
        try:
            self._custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, {"status": status}
            )
        except ApiException as exc:
            if exc.status != 404:
                raise _error("patch the status of", namespace, name, exc) from None

    def delete(self, namespace: str, name: str, uid: str | None = None) -> bool:
        """Delete if present (only that incarnation when `uid` is given)."""
        check_fence()
        body = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))
        try:
            self._custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, body=body
            )
        except ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise _error("delete", namespace, name, exc) from None
        return True


def _error(verb: str, namespace: str, name: str, exc: ApiException) -> ServerError:
    return ServerError(
        f"cannot {verb} ManagedSecret {namespace}/{name}: HTTP {exc.status} {exc.reason}"
    )
