"""In-memory stand-ins for the Kubernetes gateways (the one set of fakes for the unit tier
and the integration tests that drive services without a cluster)."""

from __future__ import annotations

import copy
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


def managed(
    name: str,
    spec: dict[str, Any],
    *,
    namespace: str = "team-a",
    generation: int = 1,
    uid: str | None = None,
    status: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A ManagedSecret body as the watch delivers it."""
    return {
        "apiVersion": "kustos.io/v1alpha1",
        "kind": "ManagedSecret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid or f"uid-{name}",
            "generation": generation,
            "annotations": dict(annotations or {}),
        },
        "spec": copy.deepcopy(spec),
        "status": copy.deepcopy(status or {}),
    }


class FakeEvents:
    """The Event sink: (object name, reason, message, type) per Event, in order."""

    def __init__(self) -> None:
        self.emitted: list[tuple[str, Reason, str, EventType]] = []

    def emit(
        self, ref: ObjectRef, reason: Reason, message: str, type: EventType = EventType.NORMAL
    ) -> None:
        self.emitted.append((ref.name, reason, message, type))

    def reasons(self) -> list[Reason]:
        return [e[1] for e in self.emitted]


class FakeSecrets:
    """The Secret gateway's get/create/replace/delete over a dict, with the API's rules
    that matter here (resourceVersion, uid kept by a replace, 404 as None), counting
    reads and writes."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.rv = 0
        self.gets = 0
        self.writes = 0

    def get(self, ns: str, name: str) -> dict[str, Any] | None:
        self.gets += 1
        obj = self.objects.get((ns, name))
        return copy.deepcopy(obj) if obj else None

    def create(self, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        self.writes += 1
        self.rv += 1
        body = copy.deepcopy(body)
        uid = body["metadata"].get("uid") or f"uid-{self.rv}"
        body["metadata"].update(resourceVersion=str(self.rv), uid=uid)
        self.objects[(ns, body["metadata"]["name"])] = body
        return copy.deepcopy(body)

    def replace(self, ns: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.create(ns, body)

    def delete(self, ns: str, name: str, uid: str | None = None) -> bool:
        self.writes += 1
        return self.objects.pop((ns, name), None) is not None


class FakeObjects:
    """The ManagedSecret gateway's get/create/merge_patch/delete over a dict."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.uid = 0

    def get(self, ns: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.get((ns, name))
        return copy.deepcopy(obj) if obj else None

    def create(
        self, ns: str, name: str, spec: dict[str, Any], annotations: dict[str, str]
    ) -> dict[str, Any]:
        self.uid += 1  # every incarnation its own uid, as the API server gives
        self.objects[(ns, name)] = managed(
            name, spec, namespace=ns, uid=f"uid-{self.uid}", annotations=annotations
        )
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
