"""Every example under examples/ is applied to the real cluster with the real operator."""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.kube_helpers import get, new_namespace, ready, secret_data, wait_for

pytestmark = pytest.mark.cluster
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def cluster(kube_cluster: Any) -> Any:
    kube_cluster.apply_crds()
    return kube_cluster


def test_every_example_is_covered() -> None:
    # 03 runs an app pod against Kustos installed in the cluster: tests/e2e/test_install.py;
    # 05 and 06 (boto3, JavaScript v3, no static key) too: tests/e2e/test_pod_credentials.py;
    # 07 (an env-var app through rotations, real PostgreSQL): tests/e2e/test_consumers.py.
    # 08 and 09 run here with the node's base image (python3) for the Kustos image.
    assert sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()) == [
        "01-generated-password",
        "02-from-existing-secret",
        "03-app-reads-secret",
        "04-database-url",
        "05-boto3-no-static-key",
        "06-javascript-no-static-key",
        "07-env-app-through-rotations",
        "08-statefulset-restarted-on-rotation",
        "09-shared-across-namespaces",
    ]


def test_01_generated_password(cluster: Any, operator_factory: Any) -> None:
    operator_factory().start()
    ns = new_namespace(cluster)
    manifest = EXAMPLES / "01-generated-password" / "managedsecret.yaml"
    cluster.kubectl("apply", "-n", ns, "-f", str(manifest))
    wait_for(lambda: ready(cluster, "orders-db", ns))
    data = secret_data(get(cluster, "secret", "orders-db", ns) or {})
    assert data["username"] == "orders_app"
    assert len(data["password"]) == 32
    assert not set(data["password"]) & set("\"'\\`$")
    described = cluster.kubectl("describe", "ms", "orders-db", "-n", ns).stdout
    assert "prod/payments/orders-db" in described


def test_02_from_existing_secret(cluster: Any, operator_factory: Any) -> None:
    """The commands in the example's header, as written (with `-n`), in their order."""
    operator_factory().start()
    ns = new_namespace(cluster)
    manifest = EXAMPLES / "02-from-existing-secret" / "managedsecret.yaml"
    steps = [
        line.removeprefix("#").strip()
        for line in manifest.read_text().splitlines()
        if line.startswith("#   kubectl ")
    ]
    assert [s.split()[1] for s in steps] == ["create", "annotate", "apply"]
    for step in steps:
        args = step.replace("apiKey=...", "apiKey=abc123").split()[1:]
        cluster.kubectl(*args, "-n", ns)
    name = yaml.safe_load(manifest.read_text())["metadata"]["name"]
    wait_for(lambda: ready(cluster, name, ns))
    assert secret_data(get(cluster, "secret", "payments-api-key", ns) or {}) == {"apiKey": "abc123"}


def test_04_database_url(cluster: Any, operator_factory: Any) -> None:
    """The rendered keys parse as what they claim to be and carry the generated password."""
    operator_factory().start()
    ns = new_namespace(cluster)
    manifest = EXAMPLES / "04-database-url" / "managedsecret.yaml"
    cluster.kubectl("apply", "-n", ns, "-f", str(manifest))
    wait_for(lambda: ready(cluster, "shop-db", ns))
    data = secret_data(get(cluster, "secret", "shop-db", ns) or {})
    password = data["password"]
    assert len(password) == 32
    url = urllib.parse.urlsplit(data["DATABASE_URL"])
    assert (url.username, url.hostname, url.port, url.path) == (
        "shop_app",
        "postgres.shop.svc.cluster.local",
        5432,
        "/shop",
    )
    assert urllib.parse.unquote(url.password or "") == password
    jdbc = urllib.parse.urlsplit(data["JDBC_URL"].removeprefix("jdbc:"))
    assert urllib.parse.parse_qs(jdbc.query) == {"user": ["shop_app"], "password": [password]}
    ini = dict(line.split(" = ", 1) for line in data["database.ini"].splitlines()[1:])
    assert json.loads(ini["password"]) == password and ini["dbname"] == "shop"
    assert sorted(data) == [
        "DATABASE_URL",
        "JDBC_URL",
        "database.ini",
        "dbname",
        "host",
        "password",
        "port",
        "username",
    ]


def _docs(path: Path, image: str) -> list[dict[str, Any]]:
    """The manifest's objects, with the node's base image (python3) for the example's."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    for doc in docs:
        for c in doc.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
            c["image"], c["imagePullPolicy"] = image, "Never"
    return docs


def _logs(cluster: Any, ns: str, pod: str) -> str:
    return str(cluster.kubectl("-n", ns, "logs", pod, check=False).stdout)


def _fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:12]


def test_08_statefulset_restarted_on_rotation(cluster: Any, operator_factory: Any) -> None:
    """The StatefulSet named in restartOnChange restarts once per rotation, and its pods
    start with the new token in their environment."""
    operator_factory(
        KUSTOS_ROLLOUT_DEBOUNCE_SECONDS="1", KUSTOS_ROTATION_TICK_SECONDS="0.5"
    ).start()
    ns = new_namespace(cluster)
    example = EXAMPLES / "08-statefulset-restarted-on-rotation"
    cluster.kubectl("apply", "-n", ns, "-f", str(example / "managedsecret.yaml"))
    wait_for(lambda: ready(cluster, "worker-token", ns), timeout=120)
    docs = _docs(example / "statefulset.yaml", cluster.base_image)
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump_all(docs))

    def started_with(token: str) -> bool:
        line = f"worker: started with token sha256 {_fingerprint(token)}"
        return all(line in _logs(cluster, ns, f"worker-{i}") for i in range(2))

    def token() -> str:
        return secret_data(get(cluster, "secret", "worker-token", ns) or {})["token"]

    first = token()
    wait_for(lambda: started_with(first), timeout=120, what="both workers started")
    generation = (get(cluster, "statefulset", "worker", ns) or {})["metadata"]["generation"]
    cluster.kubectl("annotate", "ms", "worker-token", "-n", ns, "kustos.io/rotate-now=1")

    def rotated() -> str | None:
        new = token()
        return new if new != first else None

    second = wait_for(rotated, timeout=120, what="rotated")
    wait_for(lambda: started_with(second), timeout=180, what="both workers restarted")
    sts = get(cluster, "statefulset", "worker", ns) or {}
    marker = json.loads(
        sts["spec"]["template"]["metadata"]["annotations"]["kustos.io/secret-versions"]
    )
    ms = get(cluster, "managedsecret", "worker-token", ns) or {}
    assert marker == {"worker-token": ms["status"]["currentVersionId"]}
    assert sts["metadata"]["generation"] == generation + 1  # one restart
    cluster.kubectl(
        "-n", ns, "rollout", "status", "statefulset/worker", "--timeout=120s", timeout=130
    )


def test_09_shared_across_namespaces(cluster: Any, operator_factory: Any) -> None:
    """The copy appears in the namespace that consented, a pod there reads it, and removing
    the consent removes the copy."""
    operator_factory().start()
    owner, reader = new_namespace(cluster, "payments"), new_namespace(cluster, "reporting")
    example = EXAMPLES / "09-shared-across-namespaces"
    (ms,) = _docs(example / "managedsecret.yaml", cluster.base_image)
    ms["spec"]["target"]["shareWith"]["namespaces"] = [reader]
    cluster.kubectl("label", "namespace", reader, f"shares.kustos.io/{owner}=accept")
    cluster.kubectl("apply", "-n", owner, "-f", "-", input=json.dumps(ms))
    wait_for(lambda: ready(cluster, "ledger-api-key", owner), timeout=120)

    def copy() -> dict[str, Any] | None:
        return get(cluster, "secret", "ledger-api-key", reader)

    wait_for(copy, timeout=60, what="the copy in the reading namespace")
    key = secret_data(get(cluster, "secret", "ledger-api-key", owner) or {})["apiKey"]
    assert secret_data(copy() or {}) == {"apiKey": key}
    docs = _docs(example / "reader.yaml", cluster.base_image)
    cluster.kubectl("apply", "-n", reader, "-f", "-", input=yaml.safe_dump_all(docs))
    cluster.kubectl(
        "-n", reader, "rollout", "status", "deploy/ledger-reader", "--timeout=120s", timeout=130
    )
    line = f"ledger-reader: read the shared key (sha256 {_fingerprint(key)})"
    wait_for(
        lambda: line in str(cluster.kubectl("-n", reader, "logs", "deploy/ledger-reader").stdout),
        timeout=60,
        what="the reader read the copy",
    )
    status = (get(cluster, "managedsecret", "ledger-api-key", owner) or {})["status"]
    assert status["sharing"]["namespaces"] == [reader]
    cluster.kubectl("label", "namespace", reader, f"shares.kustos.io/{owner}-")
    wait_for(lambda: copy() is None, timeout=60, what="the copy removed with the consent")
