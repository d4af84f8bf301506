"""The e2e tier runs on the session's cluster with a node: every e2e test shares it.

``installed`` (per module) is Kustos installed as users install it (the image built from
the Dockerfile, ``kubectl apply -k manifests/overlays/sqlite``), the operator Ready in its
pod; ``example_image`` builds an example app's image (examples/*/Dockerfile, cached) and
loads it into the node; ``pod_pg`` (per module) is a private PostgreSQL that pods reach.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests import cluster_fixture
from tests.db_fixture import DbServer, pod_network, pod_postgres

REPO = Path(__file__).resolve().parents[2]
OVERLAY = REPO / "manifests" / "overlays" / "sqlite"
SYSTEM = "kustos-system"


@pytest.fixture(scope="session")
def kube_cluster(node_cluster: Any) -> Any:
    """Here ``kube_cluster`` (what the operator fixture and helpers use) is the node cluster."""
    return node_cluster


@pytest.fixture(scope="module")
def installed(node_cluster: Any, kustos_image: str) -> Iterator[Any]:
    assert kustos_image == "kustos:0.1.0"  # the name the manifests use, unchanged
    node_cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-k", str(OVERLAY), timeout=120
    )
    try:
        node_cluster.kubectl(
            "-n",
            SYSTEM,
            "rollout",
            "status",
            "deploy/kustos-operator",
            "--timeout=300s",
            timeout=330,
        )
    except AssertionError as e:
        pods = node_cluster.kubectl("-n", SYSTEM, "describe", "pods", check=False).stdout
        logs = node_cluster.kubectl(
            "-n", SYSTEM, "logs", "deploy/kustos-operator", "--tail=40", check=False
        )
        raise AssertionError(
            f"operator not Ready:\n{pods[-3000:]}\n{logs.stdout}{logs.stderr}"
        ) from e
    yield node_cluster
    # Uninstall the operator (not the CRDs: other tests' objects use them), so later tests'
    # host operators are the only ones reconciling.
    node_cluster.kubectl(
        "delete",
        "deploy",
        "kustos-operator",
        "-n",
        SYSTEM,
        "--ignore-not-found",
        "--wait=true",
        timeout=120,
    )
    # Cluster-scoped objects of the overlay go too: the chart (tests/e2e/test_helm.py) owns
    # objects of the same names and refuses to adopt ones it did not create.
    node_cluster.kubectl(
        "delete",
        "clusterrole,clusterrolebinding,mutatingwebhookconfiguration",
        "-l",
        "app.kubernetes.io/part-of=kustos,app.kubernetes.io/managed-by!=Helm",
        "--ignore-not-found",
        timeout=120,
    )


@pytest.fixture(scope="session")
def example_image(
    node_cluster: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., str]:
    """``example_image(dir, name, base_extra="")``: the image of ``examples/<dir>/Dockerfile``
    under ``name`` (e.g. ``orders-reader:0.1.0``), built once (cached) and loaded on the node;
    ``base_extra``: Debian packages its base needs (``nodejs``)."""
    if node_cluster.control_plane is None:
        pytest.skip("example images are built for the local node")
    images = cluster_fixture._controlplane_module().images_module()  # tools/images/images.py
    built: dict[str, str] = {}

    def build(directory: str, name: str, base_extra: str = "") -> str:
        if name not in built:
            work = tmp_path_factory.mktemp("example-image")
            archive, _tag = images.build_example(
                REPO / "examples" / directory,
                f"docker.io/library/{name}",
                work / "image.tar",
                work,
                base_extra,
            )
            node_cluster.load_image(archive)
            built[name] = name
        return built[name]

    return build


@pytest.fixture(scope="module")
def pod_pg(node_cluster: Any) -> Iterator[DbServer]:
    """A private PostgreSQL on this machine that pods reach at the node's bridge address
    (``DbServer.host`` is loopback for the test itself; pods use ``pod_network().address``
    and ``port``), TLS on, password logins (scram-sha-256) from the pod range; purged after
    the module."""
    if node_cluster.control_plane is None:
        pytest.skip("the test PostgreSQL runs on this machine: the local node only")
    pg = pod_postgres(pod_network())
    try:
        yield pg
    finally:
        pg.purge()
