"""The operator runs with exactly the RBAC of `manifests/` (its ServiceAccount's own token,
not the admin's) on an apiserver that enforces OwnerReferencesPermissionEnforcement, as
OpenShift and other hardened clusters do: it projects, and the rule it needs for that
(`update` on `managedsecrets/finalizers`, for blockOwnerDeletion) is really needed."""

from __future__ import annotations

import copy
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.kube_helpers import condition, get, managed_secret, new_namespace, ready, wait_for
from tests.operator_fixture import OperatorRunner

pytestmark = pytest.mark.cluster
MANIFESTS = Path(__file__).resolve().parents[2] / "manifests"
SA = "kustos-operator"


def manifest_rbac(cluster: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    built = cluster.kubectl("kustomize", str(MANIFESTS / "overlays" / "sqlite")).stdout
    docs = [d for d in yaml.safe_load_all(built) if d]
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    binding = next(d for d in docs if d["kind"] == "ClusterRoleBinding")
    assert [s["name"] for s in binding["subjects"]] == [SA]
    return role, binding


def bind_projection_watch(cluster: Any, sa_ns: str, ns: str, suffix: str) -> None:
    """The manifests' `kustos-projection-watch` (under a unique name), bound in `ns` only by
    a RoleBinding, as a namespace opts in to drift detection by watch."""
    built = cluster.kubectl("kustomize", str(MANIFESTS / "overlays" / "sqlite")).stdout
    role = next(
        copy.deepcopy(d)
        for d in yaml.safe_load_all(built)
        if d and d["kind"] == "ClusterRole" and d["metadata"]["name"] == "kustos-projection-watch"
    )
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "watch"]}
    ]
    role["metadata"] = {"name": f"kustos-projection-watch-{suffix}"}
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "kustos-projection-watch", "namespace": ns},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": role["metadata"]["name"],
        },
        "subjects": [{"kind": "ServiceAccount", "name": SA, "namespace": sa_ns}],
    }
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [role, binding]}),
    )


def install_namespaced(cluster: Any, ns: str) -> None:
    """The manifests' namespaced Roles and bindings (the AuditAnchor's), moved to `ns`."""
    built = cluster.kubectl("kustomize", str(MANIFESTS / "overlays" / "sqlite")).stdout
    items = [
        copy.deepcopy(d)
        for d in yaml.safe_load_all(built)
        if d and d["kind"] in ("Role", "RoleBinding")
    ]
    assert {d["kind"] for d in items} == {"Role", "RoleBinding"}
    for item in items:
        item["metadata"]["namespace"] = ns
        for subject in item.get("subjects", []):
            subject["namespace"] = ns
    cluster.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    )


def install(
    cluster: Any, role: dict[str, Any], binding: dict[str, Any], ns: str, suffix: str
) -> None:
    """The manifests' ClusterRole and binding, under unique names, bound to `ns`'s SA."""
    role, binding = copy.deepcopy(role), copy.deepcopy(binding)
    role["metadata"] = {"name": f"{SA}-{suffix}"}
    binding["metadata"] = {"name": f"{SA}-{suffix}"}
    binding["roleRef"]["name"] = role["metadata"]["name"]
    binding["subjects"][0]["namespace"] = ns
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [role, binding]}),
    )


def token_kubeconfig(cluster: Any, ns: str, path: Path) -> str:
    admin = json.loads(cluster.kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    token = cluster.kubectl("create", "token", SA, "-n", ns, "--duration=2h").stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "sa",
        "clusters": [{"name": "c", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": SA, "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": SA}}],
    }
    path.write_text(json.dumps(config))
    return str(path)


def owned_secret(owner: dict[str, Any], name: str) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "ownerReferences": [
                {
                    "apiVersion": "kustos.io/v1alpha1",
                    "kind": "ManagedSecret",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "stringData": {"k": "v"},
    }


@pytest.fixture(scope="module")
def cluster(kube_cluster: Any) -> Any:
    kube_cluster.apply_crds()
    return kube_cluster


def test_blocking_owner_deletion_needs_the_finalizers_rule(cluster: Any) -> None:
    """The admission plugin is on: without the rule, a Secret owned with blockOwnerDeletion
    is refused to the operator's ServiceAccount; with the manifests' rules it is accepted."""
    ns, apps = new_namespace(cluster, "rbac"), new_namespace(cluster, "app")
    cluster.kubectl("create", "serviceaccount", SA, "-n", ns)
    role, binding = manifest_rbac(cluster)
    assert {"update"} <= {
        v
        for r in role["rules"]
        if "managedsecrets/finalizers" in r["resources"]
        for v in r["verbs"]
    }
    suffix = uuid.uuid4().hex[:6]
    crippled = copy.deepcopy(role)
    crippled["rules"] = [
        r for r in role["rules"] if "managedsecrets/finalizers" not in r["resources"]
    ]
    install(cluster, crippled, binding, ns, suffix)
    cluster.kubectl("apply", "-f", "-", input=json.dumps(managed_secret("owner", apps, {})))
    owner = get(cluster, "ms", "owner", apps)
    assert owner is not None
    me = f"--as=system:serviceaccount:{ns}:{SA}"

    def attempt(name: str) -> Any:
        return cluster.kubectl(
            me, "create", "-f", "-", check=False, input=json.dumps(owned_secret(owner, name))
        )

    # the SA may create Secrets at all (the RBAC cache may lag a moment behind the apply)
    wait_for(
        lambda: (
            "forbidden" not in (p := attempt("probe")).stderr.lower()
            or "blockownerdeletion" in p.stderr.lower()
        ),
        what="role in force",
    )
    refused = attempt("blocked")
    if refused.returncode == 0 and os.environ.get("KUSTOS_TEST_KUBECONFIG"):
        pytest.skip("this cluster does not enforce OwnerReferencesPermissionEnforcement")
    assert refused.returncode != 0 and "blockOwnerDeletion" in refused.stderr
    install(cluster, role, binding, ns, suffix)
    wait_for(lambda: attempt("allowed").returncode == 0, what="the manifests' rules in force")


def test_the_operator_projects_with_exactly_the_manifests_rbac(
    cluster: Any, tmp_path: Path
) -> None:
    ns, apps = new_namespace(cluster, "rbac"), new_namespace(cluster, "app")
    bare = new_namespace(cluster, "bare")  # no RoleBinding of kustos-projection-watch
    cluster.kubectl("create", "serviceaccount", SA, "-n", ns)
    role, binding = manifest_rbac(cluster)
    suffix = uuid.uuid4().hex[:6]
    install(cluster, role, binding, ns, suffix)
    install_namespaced(cluster, ns)
    bind_projection_watch(cluster, ns, apps, suffix)
    kubeconfig = token_kubeconfig(cluster, ns, tmp_path / "sa-kubeconfig")
    whoami = cluster.kubectl(f"--kubeconfig={kubeconfig}", "auth", "whoami", "-o", "json")
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == (
        f"system:serviceaccount:{ns}:{SA}"
    )
    other = new_namespace(cluster, "share")
    runner = OperatorRunner(
        kubeconfig,
        tmp_path,
        ns,
        KUSTOS_AUDIT_ANCHOR_SECONDS="0.5",
        KUSTOS_RESYNC_SECONDS="2",
        KUSTOS_DRIFT_CHECK_SECONDS="3600",  # only the watch restores within the test
    )
    runner.start()
    try:
        cluster.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps(managed_secret("db", apps, {"generate": {"passwordLength": 16}})),
        )
        obj = wait_for(lambda: ready(cluster, "db", apps), timeout=90, what="Ready")
        secret = get(cluster, "secret", "db", apps)
        assert secret is not None
        refs = secret["metadata"]["ownerReferences"]
        assert refs[0]["uid"] == obj["metadata"]["uid"] and refs[0]["blockOwnerDeletion"]
        # Where the namespace binds kustos-projection-watch, a deleted projected Secret is
        # back in seconds (the drift pass is an hour away): the watch runs on that grant.
        cluster.kubectl("delete", "secret", "db", "-n", apps)
        wait_for(
            lambda: (get(cluster, "secret", "db", apps) or {}).get("data") == secret["data"],
            timeout=15,
            what="the deleted Secret restored by the namespace's watch",
        )
        # Where it does not, the operator projects all the same (reads by name) and says
        # the watch is refused there.
        cluster.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps(managed_secret("db", bare, {"generate": {"passwordLength": 16}})),
        )
        wait_for(lambda: ready(cluster, "db", bare), timeout=90, what="Ready without the watch")

        def drift_watched(ns: str) -> str | None:
            found = condition(get(cluster, "ms", "db", ns) or {}, "DriftWatched")
            return None if found is None else str(found["status"])

        wait_for(
            lambda: drift_watched(bare) == "False",
            timeout=90,
            what="DriftWatched=False where the namespace does not bind the watch",
        )
        assert drift_watched(apps) is None  # watched: no such condition
        wait_for(
            lambda: f"namespace {bare}: no RoleBinding of kustos-projection-watch" in runner.log(),
            what="the refused watch reported",
        )
        wait_for(
            lambda: (
                (get(cluster, "auditanchor", "kustos-audit", ns) or {})
                .get("status", {})
                .get("head", {})
                .get("seq", 0)
                > 0
            ),
            what="the audit chain anchored with the manifests' Role",
        )
        # target.shareWith with these rules: namespaces read (consent), the copy written
        # by name; withdrawing the target's consent (its label) removes the copy
        cluster.kubectl("label", "namespace", other, f"shares.kustos.io/{apps}=accept")
        cluster.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps(
                managed_secret(
                    "shared",
                    apps,
                    {
                        "generate": {"passwordLength": 16},
                        "target": {"shareWith": {"namespaces": [other]}},
                    },
                )
            ),
        )
        wait_for(
            lambda: get(cluster, "secret", "shared", other),
            timeout=90,
            what="the copy in the consenting namespace",
        )
        own = get(cluster, "secret", "shared", apps) or {}
        assert (get(cluster, "secret", "shared", other) or {})["data"] == own["data"]
        cluster.kubectl("label", "namespace", other, f"shares.kustos.io/{apps}-")
        wait_for(
            lambda: get(cluster, "secret", "shared", other) is None,
            timeout=90,
            what="the copy removed once consent is withdrawn",
        )
        assert "forbidden" not in runner.log().lower()
    finally:
        runner.stop()
