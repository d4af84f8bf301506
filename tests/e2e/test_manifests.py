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
    kube_cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=yaml.safe_dump(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kustos-system"}}
        ),
    )
    proc = kube_cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=built, check=False)
    assert proc.returncode == 0, proc.stderr


def test_rbac_never_lists_or_watches_secrets(kube_cluster: Any) -> None:
    built = kube_cluster.kubectl("kustomize", str(MANIFESTS / "overlays" / "sqlite")).stdout
    role = next(d for d in yaml.safe_load_all(built) if d and d["kind"] == "ClusterRole")
    for rule in role["rules"]:
        if "" in rule["apiGroups"] and "secrets" in rule["resources"]:
            assert not {"list", "watch", "*"} & set(rule["verbs"]), rule
    assert any("secrets" in r["resources"] for r in role["rules"])


def test_make_run_bootstrap_applies_crds_and_creates_the_namespace(kube_cluster: Any) -> None:
    """`make run` runs tools/apply_crds.py before the operator: on a fresh cluster the
    operator's namespace does not exist yet, and the keyring Secret must go there."""
    import subprocess
    import sys
    import uuid

    namespace = f"kustos-run-{uuid.uuid4().hex[:6]}"
    script = MANIFESTS.parent / "tools" / "apply_crds.py"
    proc = subprocess.run(
        [sys.executable, str(script), kube_cluster.kubeconfig, namespace],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"created namespace {namespace}" in proc.stdout
    kube_cluster.kubectl("get", "namespace", namespace)
    kube_cluster.kubectl("get", "crd", "managedsecrets.kustos.io")
    again = subprocess.run(
        [sys.executable, str(script), kube_cluster.kubeconfig, namespace],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0 and "created namespace" not in again.stdout
