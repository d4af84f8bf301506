"""The Helm chart, with helm built from the Go module proxy: lint, install on the node,
upgrade with changed values, uninstall that keeps the store and the keyring."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.kube_helpers import apply, get, managed_secret, new_namespace, ready, wait_for

# Builds the image (once per session) and waits for real rollouts on a busy machine.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1200)]
REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kustos"


@pytest.fixture(scope="module")
def helm(node_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    proc = subprocess.run(
        ["bash", str(REPO / "tools" / "helm" / "build.sh")],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    binary = Path(proc.stdout.strip().splitlines()[-1]) / "helm"
    home = tmp_path_factory.mktemp("helm")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {
            "HOME": str(home),
            "PATH": "/usr/bin:/bin",
            "HELM_CACHE_HOME": str(home / "c"),
            "HELM_CONFIG_HOME": str(home / "cfg"),
            "HELM_DATA_HOME": str(home / "d"),
        }
        done = subprocess.run(
            [str(binary), f"--kubeconfig={node_cluster.kubeconfig}", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    return run


def test_helm_lint_passes_and_refuses_sqlite_with_two_replicas(helm: Any) -> None:
    # helm built without its release ldflags assumes Kubernetes 1.20 offline: say which.
    helm("lint", str(CHART), "--strict", "--kube-version", "v1.34.4")
    bad = helm(
        "template", "x", str(CHART), "--kube-version", "v1.34.4", "--set", "replicas=2", check=False
    )
    assert bad.returncode != 0
    assert "store.type=sqlite has one writer" in bad.stderr


def test_the_chart_grants_what_the_kustomize_base_grants(helm: Any, node_cluster: Any) -> None:
    def rules(text: str) -> Any:
        # By kind and the name's last word (the chart's ClusterRole is per release).
        # So are the names of cluster-wide objects in rules (the webhook configuration's).
        return {
            (d["kind"], d["metadata"]["name"].replace("-kustos-system", "")): json.loads(
                json.dumps(d["rules"]).replace("-kustos-system", "")
            )
            for d in yaml.safe_load_all(text)
            if d and d["kind"] in ("ClusterRole", "Role")
        }

    chart = helm(
        "template", "kustos", str(CHART), "-n", "kustos-system", "--kube-version", "v1.34.4"
    ).stdout
    base = node_cluster.kubectl("kustomize", str(REPO / "manifests" / "overlays" / "sqlite")).stdout
    assert rules(chart) == rules(base)


def test_install_upgrade_uninstall_keeps_the_store_and_the_keyring(
    helm: Any, node_cluster: Any, kustos_image: str
) -> None:
    ns = f"kustos-helm-{uuid.uuid4().hex[:6]}"
    helm(
        "install", "kustos", str(CHART), "-n", ns, "--create-namespace", "--wait", "--timeout", "5m"
    )
    node_cluster.kubectl("-n", ns, "rollout", "status", "deploy/kustos-operator", "--timeout=60s")
    app = new_namespace(node_cluster)
    apply(
        node_cluster,
        managed_secret(
            "db",
            app,
            {"name": "prod/app/db", "generate": {"passwordLength": 24}, "target": {"name": "db"}},
        ),
    )
    wait_for(lambda: ready(node_cluster, "db", app), timeout=120, what="db Ready (via helm)")
    assert get(node_cluster, "secret", "kustos-keyring", ns) is not None

    helm(
        "upgrade",
        "kustos",
        str(CHART),
        "-n",
        ns,
        "--wait",
        "--timeout",
        "5m",
        "--set",
        "resources.requests.cpu=50m",
        "--set",
        "podDisruptionBudget.enabled=true",
        "--set",
        "networkPolicy.enabled=true",
    )
    deploy = get(node_cluster, "deploy", "kustos-operator", ns) or {}
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"]["cpu"] == "50m"
    assert get(node_cluster, "pdb", "kustos-operator", ns) is not None
    assert get(node_cluster, "networkpolicy", "kustos-operator", ns) is not None
    node_cluster.kubectl(
        "-n", ns, "rollout", "status", "deploy/kustos-operator", "--timeout=120s", timeout=150
    )
    wait_for(lambda: ready(node_cluster, "db", app), timeout=60, what="db still Ready")

    helm("uninstall", "kustos", "-n", ns, "--wait", "--timeout", "3m")
    assert get(node_cluster, "deploy", "kustos-operator", ns) is None
    pvc = get(node_cluster, "pvc", "kustos-data", ns)
    assert pvc is not None and pvc["status"]["phase"] == "Bound"  # the store is kept
    assert get(node_cluster, "secret", "kustos-keyring", ns) is not None  # and the keyring
    crds = json.loads(node_cluster.kubectl("get", "crd", "-o", "json").stdout)["items"]
    assert "managedsecrets.kustos.io" in {c["metadata"]["name"] for c in crds}
