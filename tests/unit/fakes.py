"""In-memory stand-ins for the Kubernetes gateways, for unit tests of the services."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar, cast

from kustos.kube.events import ObjectRef
from kustos.models.reasons import EventType, Reason

T = TypeVar("T")


def stand_in(kind: Callable[..., T], fake: object) -> T:
    """`fake` typed as the `kind` (a class or a Protocol) a service takes: the services are
    typed with the concrete gateways, which a fake matches only by duck typing. `None` for a
    dependency the test never reaches."""
    return cast(T, fake)


class FakeEvents:
    def __init__(self) -> None:
        self.emitted: list[tuple[str, str, str, str]] = []

    def emit(
        self, ref: ObjectRef, reason: Reason, message: str, type: EventType = EventType.NORMAL
    ) -> None:
        self.emitted.append((ref.name, str(reason), message, str(type)))

    def reasons(self) -> list[str]:
        return [e[1] for e in self.emitted]


class FakeSecrets:
    """The Secret gateway's get/create/replace/delete over a dict."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.rv = 0

    def get(self, ns: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.get((ns, name))
        return json.loads(json.dumps(obj)) if obj else None

    def create(self, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        self.rv += 1
        body = json.loads(json.dumps(body))
        body["metadata"].update(resourceVersion=str(self.rv), uid=f"uid-{self.rv}")
        self.objects[(ns, body["metadata"]["name"])] = body
        return body

    def replace(self, ns: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.create(ns, body)

    def delete(self, ns: str, name: str, uid: str | None = None) -> bool:
        return self.objects.pop((ns, name), None) is not None


class FakeObjects:
    """The ManagedSecret gateway's get/create/merge_patch/delete over a dict."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.uid = 0

    def get(self, ns: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.get((ns, name))
        return json.loads(json.dumps(obj)) if obj else None

    def create(
        self, ns: str, name: str, spec: dict[str, Any], annotations: dict[str, str]
    ) -> dict[str, Any]:
        self.uid += 1
        self.objects[(ns, name)] = {
            "metadata": {
                "namespace": ns,
                "name": name,
                "uid": f"uid-{self.uid}",
                "annotations": dict(annotations),
            },
            "spec": json.loads(json.dumps(spec)),
        }
        return self.get(ns, name) or {}

    def merge_patch(self, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        obj = self.objects.get((ns, name))
        if obj is None:
            return None
        _merge(obj, patch)
        return self.get(ns, name)

    def delete(self, ns: str, name: str, uid: str | None = None) -> bool:
        return self.objects.pop((ns, name), None) is not None


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = json.loads(json.dumps(value))
