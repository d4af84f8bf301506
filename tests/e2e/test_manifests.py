"""The install manifests build with kustomize and are accepted by the real apiserver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.cluster
MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"


@pytest.mark.parametrize("overlay", ["sqlite", "postgresql"])
def test_overlay_applies_server_side_dry_run(kube_cluster: Any, overlay: str) -> None:
    built = kube_cluster.kubectl("kustomize", str(MANIFESTS / "overlays" / overlay)).stdout
    docs = [d for d in yaml.safe_load_all(built) if d]
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ClusterRole", "ServiceAccount", "CustomResourceDefinition"} <= kinds
    # The namespace must exist for a namespaced dry run; the CRD goes first.
    kube_cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kustos-system"}}))
    proc = kube_cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=built, check=False)
    assert proc.returncode == 0, proc.stderr


def test_rbac_never_lists_or_watches_secrets(kube_cluster: Any) -> None:
    built = kube_cluster.kubectl("kustomize", str(MANIFESTS / "overlays" / "sqlite")).stdout
    role = next(d for d in yaml.safe_load_all(built) if d and d["kind"] == "ClusterRole")
    for rule in role["rules"]:
        if "" in rule["apiGroups"] and "secrets" in rule["resources"]:
            assert not {"list", "watch", "*"} & set(rule["verbs"]), rule
    assert any("secrets" in r["resources"] for r in role["rules"])
