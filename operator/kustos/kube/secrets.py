"""Reads and writes native Secrets by name (get/create/replace/delete; never list or watch).

Objects are plain dicts as the API server sends them. Errors become Kustos errors that
name the object, never its data.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from kustos.errors import ConflictError, ServerError
from kustos.models.fencing import check_fence

__all__ = ["SecretGateway"]

Obj = dict[str, Any]


class SecretGateway:
    def __init__(self, api: client.ApiClient) -> None:
        self._core = client.CoreV1Api(api)

    def get(self, namespace: str, name: str) -> Obj | None:
        try:
            resp = self._core.read_namespaced_secret(name, namespace, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _server_error("read", namespace, name, exc) from None
        data: Obj = json.loads(resp.data)
        return data

    def create(self, namespace: str, body: Obj) -> Obj:
        check_fence()  # leader work only while the Lease holds (kustos.models.fencing)
        try:
            resp = self._core.create_namespaced_secret(namespace, body, _preload_content=False)
        except ApiException as exc:
            if exc.status == 409:
                raise ConflictError(
                    f"Secret {namespace}/{body['metadata']['name']} appeared meanwhile"
                ) from None
            raise _server_error("create", namespace, body["metadata"]["name"], exc) from None
        created: Obj = json.loads(resp.data)
        return created

    def replace(self, namespace: str, name: str, body: Obj) -> Obj:
        """Replace, guarded by body's resourceVersion (optimistic concurrency)."""
        check_fence()
        try:
            resp = self._core.replace_namespaced_secret(
                name, namespace, body, _preload_content=False
            )
        except ApiException as exc:
            if exc.status in (404, 409):
                raise ServerError(
                    f"Secret {namespace}/{name} changed while being updated; will retry",
                    retry_delay=1.0,
                ) from None
            raise _server_error("replace", namespace, name, exc) from None
        replaced: Obj = json.loads(resp.data)
        return replaced

    def delete(self, namespace: str, name: str, uid: str | None = None) -> bool:
        """Delete if present (and, when `uid` is given, only that incarnation)."""
        check_fence()
        options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))
        try:
            self._core.delete_namespaced_secret(name, namespace, body=options)
        except ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise _server_error("delete", namespace, name, exc) from None
        return True


def _server_error(verb: str, namespace: str, name: str, exc: ApiException) -> ServerError:
    # ApiException's str includes the response body, which may echo Secret data: use the
    # status code and reason only.
    return ServerError(f"cannot {verb} Secret {namespace}/{name}: HTTP {exc.status} {exc.reason}")
