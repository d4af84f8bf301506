"""Reads the workloads of a namespace (Deployments, StatefulSets, DaemonSets) and their pods,
and patches their pod template's annotations (what `kubectl rollout restart` does).

Objects are plain dicts as the API server sends them, with `kind` filled in. Errors become
Kustos errors that name the object.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from kustos.errors import ServerError
from kustos.models.fencing import check_fence

__all__ = ["KINDS", "WorkloadGateway", "label_selector"]

Obj = dict[str, Any]
Objs = list[Obj]  # `list` is a method's name in WorkloadGateway
KINDS = ("Deployment", "StatefulSet", "DaemonSet")


class WorkloadGateway:
    def __init__(self, api: client.ApiClient) -> None:
        self._apps = client.AppsV1Api(api)
        self._core = client.CoreV1Api(api)

    def list(self, namespace: str) -> list[Obj]:
        listers = {
            "Deployment": self._apps.list_namespaced_deployment,
            "StatefulSet": self._apps.list_namespaced_stateful_set,
            "DaemonSet": self._apps.list_namespaced_daemon_set,
        }
        found: list[Obj] = []
        for kind, lister in listers.items():
            try:
                resp = lister(namespace, _preload_content=False)
            except ApiException as exc:
                raise ServerError(
                    f"cannot list {kind}s in {namespace}: HTTP {exc.status}", retry_delay=5.0
                ) from None
            for item in json.loads(resp.data).get("items", []):
                item["kind"] = kind
                found.append(item)
        return found

    def pods(self, namespace: str, selector: Mapping[str, Any]) -> Objs:
        """The pods of `namespace` that the label selector `selector` (a workload's
        `spec.selector`) matches, terminating ones included."""
        try:
            resp = self._core.list_namespaced_pod(
                namespace, label_selector=label_selector(selector), _preload_content=False
            )
        except ApiException as exc:
            raise ServerError(
                f"cannot list pods in {namespace}: HTTP {exc.status}", retry_delay=5.0
            ) from None
        return list(json.loads(resp.data).get("items", []))

    def annotate_pod_template(
        self, namespace: str, kind: str, name: str, annotations: dict[str, str]
    ) -> None:
        check_fence()  # leader work only while the Lease holds (kustos.models.fencing)
        patch = {"spec": {"template": {"metadata": {"annotations": annotations}}}}
        patchers = {
            "Deployment": self._apps.patch_namespaced_deployment,
            "StatefulSet": self._apps.patch_namespaced_stateful_set,
            "DaemonSet": self._apps.patch_namespaced_daemon_set,
        }
        try:
            patchers[kind](name, namespace, patch)
        except ApiException as exc:
            raise ServerError(
                f"cannot restart {kind} {namespace}/{name}: HTTP {exc.status}", retry_delay=5.0
            ) from None


def label_selector(selector: Mapping[str, Any]) -> str:
    """A LabelSelector object (`matchLabels`, `matchExpressions`) as the string a LIST takes."""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "Exists":
            terms.append(str(key))
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
        else:  # In, NotIn
            terms.append(f"{key} {str(op).lower()} ({','.join(map(str, values))})")
    return ",".join(terms)
