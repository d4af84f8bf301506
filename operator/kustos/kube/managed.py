"""Reads ManagedSecret objects and patches their status outside Kopf's handler cycle."""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from kustos.errors import ServerError

__all__ = ["ManagedSecretGateway"]

GROUP, VERSION, PLURAL = "kustos.io", "v1alpha1", "managedsecrets"


class ManagedSecretGateway:
    def __init__(self, api: client.ApiClient) -> None:
        self._custom = client.CustomObjectsApi(api)

    def list_all(self) -> list[dict[str, Any]]:
        try:
            result = self._custom.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        except ApiException as exc:
            raise ServerError(f"cannot list ManagedSecrets: HTTP {exc.status}") from None
        return list(result.get("items", []))

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] = self._custom.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise ServerError(f"cannot read ManagedSecret {namespace}/{name}: "
                              f"HTTP {exc.status}") from None
        return obj

    def annotate(self, namespace: str, name: str, key: str, value: str) -> None:
        body = {"metadata": {"annotations": {key: value}}}
        try:
            self._custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name, body
            )
        except ApiException as exc:
            raise ServerError(f"cannot annotate ManagedSecret {namespace}/{name}: "
                              f"HTTP {exc.status}") from None

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        try:
            self._custom.patch_namespaced_custom_object_status(
                GROUP, VERSION, namespace, PLURAL, name, {"status": status}
            )
        except ApiException as exc:
            if exc.status == 404:
                return
            raise ServerError(f"cannot patch ManagedSecret {namespace}/{name} status: "
                              f"HTTP {exc.status}") from None
