"""The control plane the tests run against is a real one.

Garbage collection and namespace deletion need kube-controller-manager; TokenRequest and
TokenReview need the apiserver's ServiceAccount issuer with the ``kustos`` audience.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from tests.cluster_fixture import ENV_KUBECONFIG, KubeCluster

pytestmark = pytest.mark.cluster


def _eventually(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")


def _exists(cluster: KubeCluster, *what: str) -> bool:
    proc = cluster.kubectl("get", *what, "--ignore-not-found", "-o", "name", check=False)
    assert proc.returncode == 0, proc.stderr
    return bool(proc.stdout.strip())


@pytest.fixture
def namespace(kube_cluster: KubeCluster) -> Iterator[str]:
    name = f"kustos-cp-{uuid.uuid4().hex[:8]}"
    kube_cluster.kubectl("create", "namespace", name)
    yield name
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


def test_server_is_the_pinned_kubernetes(kube_cluster: KubeCluster) -> None:
    if os.environ.get(ENV_KUBECONFIG):
        pytest.skip("an external cluster runs whatever version it runs")
    version = json.loads(kube_cluster.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == "v1.34.4"
    assert version["clientVersion"]["gitVersion"] == "v1.34.4"


def test_garbage_collector_removes_dependents(kube_cluster: KubeCluster, namespace: str) -> None:
    ns = ("-n", namespace)
    kube_cluster.kubectl("create", "configmap", "owner", *ns)
    uid = kube_cluster.kubectl("get", "configmap", "owner", *ns, "-o", "jsonpath={.metadata.uid}")
    dependent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "dependent",
            "namespace": namespace,
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid.stdout}
            ],
        },
        "data": {"k": "v"},
    }
    kube_cluster.kubectl("create", "-f", "-", input=json.dumps(dependent))
    assert _exists(kube_cluster, "configmap", "dependent", *ns)

    kube_cluster.kubectl("delete", "configmap", "owner", *ns)
    _eventually(
        lambda: not _exists(kube_cluster, "configmap", "dependent", *ns),
        "the garbage collector to delete the dependent ConfigMap",
    )


def test_namespace_deletion_completes(kube_cluster: KubeCluster) -> None:
    name = f"kustos-cp-del-{uuid.uuid4().hex[:8]}"
    kube_cluster.kubectl("create", "namespace", name)
    kube_cluster.kubectl("create", "configmap", "content", "-n", name)
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false")
    _eventually(
        lambda: not _exists(kube_cluster, "namespace", name),
        "the namespace controller to finish deleting the namespace",
    )


def test_token_request_and_review_with_kustos_audience(
    kube_cluster: KubeCluster, namespace: str
) -> None:
    kube_cluster.kubectl("create", "serviceaccount", "app", "-n", namespace)
    token = kube_cluster.kubectl(
        "create", "token", "app", "-n", namespace, "--audience=kustos", "--duration=10m"
    ).stdout.strip()
    assert token.count(".") == 2  # a JWT

    review = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": ["kustos"]},
    }
    out = kube_cluster.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(review))
    status = json.loads(out.stdout)["status"]
    assert status.get("authenticated") is True, status
    assert status["user"]["username"] == f"system:serviceaccount:{namespace}:app"
    assert "kustos" in status["audiences"]

    # The same token is not valid for an audience it was not issued for.
    review["spec"] = {"token": token, "audiences": ["someone-else"]}
    out = kube_cluster.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(review))
    assert not json.loads(out.stdout)["status"].get("authenticated")


def test_secrets_are_encrypted_at_rest_in_etcd(kube_cluster: KubeCluster, namespace: str) -> None:
    """The apiserver's EncryptionConfiguration: etcd holds secretbox ciphertext, never the
    value (projected Secrets hold real secret values)."""
    import base64
    import urllib.request
    from pathlib import Path

    from tests import cluster_fixture

    cp = cluster_fixture._private
    if os.environ.get(ENV_KUBECONFIG) or cp is None:
        pytest.skip("reads the local control plane's etcd")
    canary = f"canary-{uuid.uuid4().hex}"
    kube_cluster.kubectl(
        "create", "secret", "generic", "enc", "-n", namespace, f"--from-literal=v={canary}"
    )
    state = json.loads((Path(cp.state_dir) / "state.json").read_text())
    key = base64.b64encode(f"/registry/secrets/{namespace}/enc".encode()).decode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{state['ports']['etcd']}/v3/kv/range",
        data=json.dumps({"key": key}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback etcd
        kvs = json.load(resp)["kvs"]
    stored = base64.b64decode(kvs[0]["value"])
    assert stored.startswith(b"k8s:enc:secretbox:v1:key1:")
    assert canary.encode() not in stored
    shown = kube_cluster.kubectl(
        "get", "secret", "enc", "-n", namespace, "-o", "jsonpath={.data.v}"
    ).stdout
    assert base64.b64decode(shown).decode() == canary


def test_a_component_just_spawned_is_never_taken_for_dead() -> None:
    """Right after `subprocess.Popen` returns, the child's /proc/<pid>/cmdline is often still
    empty (its exec has not set up the arguments): the start-up wait once called such a
    containerd "exited during startup" with an empty log, failing every e2e test of a run.
    It asks waitpid instead, and says how a component that really ended did."""
    import shutil
    import signal
    import subprocess

    from tests.cluster_fixture import _controlplane_module

    cluster = _controlplane_module()
    binary = shutil.which("sleep")
    assert binary is not None
    for _ in range(200):
        proc = subprocess.Popen([binary, "30"], start_new_session=True)
        try:
            assert cluster._ended(proc.pid, binary) is None
        finally:
            proc.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (ended := cluster._ended(proc.pid, binary)) is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert ended == "killed by signal 9"
    done = subprocess.Popen([binary, "0"])
    deadline = time.monotonic() + 10
    while (ended := cluster._ended(done.pid, binary)) is None:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert ended == "exit status 0"
