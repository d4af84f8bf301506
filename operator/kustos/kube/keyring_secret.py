"""Keeps the keyring in a Kubernetes Secret the customer controls (create/read/replace).

Kustos creates the Secret only when it is absent, and replaces it only guarded by the
resourceVersion it read, so a customer-supplied keyring is never overwritten by accident.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from kubernetes import client
from kubernetes.client.rest import ApiException

from kustos.errors import ConflictError, KeyringError

__all__ = ["KeyringSecret", "StoredKeyring"]


@dataclass(frozen=True)
class StoredKeyring:
    data: dict[str, bytes]
    resource_version: str


class KeyringSecret:
    def __init__(self, api: client.ApiClient, namespace: str, name: str) -> None:
        self._core = client.CoreV1Api(api)
        self.namespace = namespace
        self.name = name

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def load(self) -> StoredKeyring | None:
        try:
            secret = self._core.read_namespaced_secret(self.name, self.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise KeyringError(
                f"cannot read keyring Secret {self.ref}: HTTP {exc.status} {exc.reason}"
            ) from None
        try:
            data = {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}
        except ValueError:
            raise KeyringError(f"keyring Secret {self.ref} holds invalid base64") from None
        return StoredKeyring(data=data, resource_version=secret.metadata.resource_version)

    def create(self, data: dict[str, str]) -> None:
        """`data` as a Secret's data: values already base64."""
        body = client.V1Secret(
            metadata=client.V1ObjectMeta(
                name=self.name,
                namespace=self.namespace,
                labels={"app.kubernetes.io/part-of": "kustos", "kustos.io/keyring": "true"},
                annotations={
                    "kustos.io/warning": "Kustos's key-encryption keys. Losing "
                    "this Secret makes every stored secret unreadable: back it up."
                },
            ),
            type="Opaque",
            data=dict(data),
        )
        try:
            self._core.create_namespaced_secret(self.namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                raise ConflictError(f"keyring Secret {self.ref} was created meanwhile") from None
            if exc.status == 404:
                raise KeyringError(
                    f"cannot create keyring Secret {self.ref}: namespace {self.namespace} does "
                    "not exist (create it, or set KUSTOS_NAMESPACE)"
                ) from None
            raise KeyringError(
                f"cannot create keyring Secret {self.ref}: HTTP {exc.status} {exc.reason}"
            ) from None

    def replace(self, data: dict[str, str], resource_version: str) -> None:
        body = client.V1Secret(
            metadata=client.V1ObjectMeta(
                name=self.name, namespace=self.namespace, resource_version=resource_version
            ),
            data=dict(data),
        )
        try:
            self._core.patch_namespaced_secret(self.name, self.namespace, body)
        except ApiException as exc:
            raise KeyringError(
                f"cannot update keyring Secret {self.ref}: HTTP {exc.status} {exc.reason}"
            ) from None
