"""Reads Namespaces (get by name, list by label selector): their labels carry the consent of
a namespace to receive shared Secrets. Never writes them.
"""

from __future__ import annotations

import json
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from kustos.errors import ServerError

__all__ = ["NamespaceGateway"]

Obj = dict[str, Any]


class NamespaceGateway:
    def __init__(self, api: client.ApiClient) -> None:
        self._core = client.CoreV1Api(api)

    def get(self, name: str) -> Obj | None:
        try:
            resp = self._core.read_namespace(name, _preload_content=False)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise ServerError(
                f"cannot read namespace {name}: HTTP {exc.status}", retry_delay=5.0
            ) from None
        found: Obj = json.loads(resp.data)
        return found

    def list(self, selector: str) -> list[Obj]:
        try:
            resp = self._core.list_namespace(label_selector=selector, _preload_content=False)
        except ApiException as exc:
            raise ServerError(
                f"cannot list namespaces ({selector}): HTTP {exc.status}", retry_delay=5.0
            ) from None
        items: list[Obj] = json.loads(resp.data).get("items", [])
        return items
