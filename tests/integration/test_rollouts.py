"""Restarts on change against the real kube-apiserver and the real operator: a Deployment
that consumes two projected Secrets changed one after the other inside the debounce window
gets its pod template marked once,
with both new version ids; a Deployment that did not opt in is not touched."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import pytest
from tests.kube_helpers import (
    apply,
    event_reasons,
    get,
    managed_secret,
    new_namespace,
    ready,
    wait_for,
)

pytestmark = pytest.mark.cluster
MARKER = "kustos.io/secret-versions"


@pytest.fixture(scope="module")
def cluster(kube_cluster: Any) -> Any:
    kube_cluster.apply_crds()
    return kube_cluster


def deployment(name: str, ns: str, secrets: list[str], opt_in: bool) -> dict[str, Any]:
    annotations = {"kustos.io/restart-on-change": "true"} if opt_in else {}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "app",
                            "image": "registry.invalid/app:1",
                            "envFrom": [{"secretRef": {"name": s}} for s in secrets],
                        }
                    ]
                },
            },
        },
    }


def spec(length: int) -> dict[str, Any]:
    return {"generate": {"passwordLength": length, "keys": ["password"]}}


def test_two_secrets_changed_together_restart_the_deployment_once(
    cluster: Any,
    operator_factory: Any,
) -> None:
    operator_factory(KUSTOS_ROLLOUT_DEBOUNCE_SECONDS="15").start()
    ns = new_namespace(cluster)
    for name in ("db", "cache"):
        apply(cluster, managed_secret(name, ns, spec(20)))
    apply(cluster, deployment("web", ns, ["db", "cache"], opt_in=True))
    apply(cluster, deployment("batch", ns, ["db"], opt_in=False))
    for name in ("db", "cache"):
        wait_for(partial(ready, cluster, name, ns), what=f"{name} Ready")
    before = {n: get(cluster, "deployment", n, ns) or {} for n in ("web", "batch")}

    # One change, and once it is projected (the window is open) the other: without the
    # debounce these would be two restarts.
    apply(cluster, managed_secret("db", ns, spec(24)))
    wait_for(
        lambda: (o := ready(cluster, "db", ns)) and o["metadata"]["generation"] == 2,
        what="db's new version projected",
    )
    apply(cluster, managed_secret("cache", ns, spec(24)))

    def new_versions() -> dict[str, str] | None:
        found = {}
        for name in ("db", "cache"):
            obj = ready(cluster, name, ns)
            if obj is None or obj["metadata"]["generation"] < 2:
                return None
            found[name] = obj["status"]["currentVersionId"]
        return found

    versions = wait_for(new_versions, what="both new versions")

    def marked() -> dict[str, Any] | None:
        web = get(cluster, "deployment", "web", ns) or {}
        raw = ((web["spec"]["template"].get("metadata") or {}).get("annotations") or {}).get(MARKER)
        return web if raw and json.loads(raw) == versions else None

    web = wait_for(marked, timeout=90, what="the marker with both versions")
    assert web["metadata"]["generation"] == before["web"]["metadata"]["generation"] + 1
    batch = get(cluster, "deployment", "batch", ns) or {}
    assert batch["metadata"]["generation"] == before["batch"]["metadata"]["generation"]
    assert MARKER not in (
        (batch["spec"]["template"].get("metadata") or {}).get("annotations") or {}
    )
    # The marker is the version ids, nothing derived from the values.
    for name in ("db", "cache"):
        secret = get(cluster, "secret", name, ns) or {}
        assert secret["data"]["password"] not in json.dumps(web)
    for name in ("db", "cache"):  # kubectl describe ms tells the restart

        def restarted(n: str = name) -> bool:
            return "WorkloadRestarted" in event_reasons(cluster, n, ns)

        wait_for(restarted, what=f"{name}'s WorkloadRestarted Event")
