"""Every example under examples/ is applied to the real cluster with the real operator."""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.db_fixture import pod_network
from tests.kube_helpers import get, new_namespace, ready, secret_data, wait_for

from kustos.models import SecretValue
from kustos.rotation.rotators.postgresql import scram_sha256_verifier

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


# Example 04's app: connects with DATABASE_URL exactly as the Secret holds it, retrying until
# the database accepts it, then prints what it connected as (never the URL) and stays up.
APP_04 = """
import json, os, time
import psycopg
while True:
    try:
        with psycopg.connect(os.environ['DATABASE_URL'], connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT current_user, current_database(),"
                " (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())"
            ).fetchone()
        print(json.dumps({'connected': list(row)}), flush=True)
        break
    except psycopg.OperationalError as e:
        print(json.dumps({'failed': type(e).__name__}), flush=True)
        time.sleep(1)
time.sleep(1e9)
"""


def _connected(cluster: Any, ns: str, pod: str) -> list[Any] | None:
    for line in _logs(cluster, ns, pod).splitlines():
        if line.startswith('{"connected"'):
            connected: list[Any] = json.loads(line)["connected"]
            return connected
    return None


def _set_login(pg: Any, password: str) -> None:
    """What the database admin does: the role the example names, with the Secret's password
    (as a SCRAM verifier: the statement log never holds the password)."""
    verifier = scram_sha256_verifier(SecretValue(password))
    with pg.connect() as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'shop_app'").fetchone():
            conn.execute(f"ALTER ROLE shop_app PASSWORD '{verifier}'")
        else:
            conn.execute(f"CREATE ROLE shop_app LOGIN PASSWORD '{verifier}'")
            conn.execute("CREATE DATABASE shop OWNER shop_app")


def test_04_database_url(
    cluster: Any, operator_factory: Any, request: pytest.FixtureRequest
) -> None:
    """The example as printed, in namespace `shop`: the rendered keys parse as what they claim
    to be; an app pod reads DATABASE_URL from its environment and logs in to a real
    PostgreSQL through `postgres.shop.svc.cluster.local` (cluster DNS, a selector-less
    Service) with `sslmode=require`, the punctuated password surviving `urlencode`; after a
    rotation (the role's password set to the new value) the restarted pod logs in again.
    On another cluster (``KUSTOS_TEST_KUBECONFIG``) only the rendered keys are checked."""
    operator_factory(
        KUSTOS_ROLLOUT_DEBOUNCE_SECONDS="1", KUSTOS_ROTATION_TICK_SECONDS="0.5"
    ).start()
    ns = "shop"
    example = EXAMPLES / "04-database-url"
    cluster.kubectl("create", "namespace", ns)
    try:
        cluster.kubectl("apply", "-n", ns, "-f", str(example / "managedsecret.yaml"))
        wait_for(lambda: ready(cluster, "shop-db", ns))
        data = secret_data(get(cluster, "secret", "shop-db", ns) or {})
        password = data["password"]
        assert len(password) == 32
        url = urllib.parse.urlsplit(data["DATABASE_URL"])
        assert (url.username, url.hostname, url.port, url.path, url.query) == (
            "shop_app",
            "postgres.shop.svc.cluster.local",
            5432,
            "/shop",
            "sslmode=require",
        )
        assert urllib.parse.unquote(url.password or "") == password
        assert "%" in (url.password or "")  # punctuation was there, and was encoded
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

        if cluster.control_plane is None:
            return  # the app's part needs this machine's PostgreSQL and image builds
        pod_pg = request.getfixturevalue("pod_pg")
        example_image: Callable[..., str] = request.getfixturevalue("example_image")

        # The database behind the name: the example's Service, its EndpointSlice at the
        # address and port where pods reach the test's PostgreSQL.
        _set_login(pod_pg, password)
        docs = [d for d in yaml.safe_load_all((example / "postgres-service.yaml").read_text())]
        (slice_,) = [d for d in docs if d["kind"] == "EndpointSlice"]
        slice_["endpoints"][0]["addresses"] = [pod_network().address]
        slice_["ports"][0]["port"] = pod_pg.port
        cluster.kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump_all(docs))

        image = example_image("07-env-app-through-rotations", "orders-db-app:0.1.0")
        labels = {"app": "shop-app"}
        container = {
            "name": "app",
            "image": image,
            "imagePullPolicy": "Never",
            "command": ["/opt/app/bin/python", "-c", APP_04],
            "env": [
                {
                    "name": "DATABASE_URL",
                    "valueFrom": {"secretKeyRef": {"name": "shop-db", "key": "DATABASE_URL"}},
                }
            ],
        }
        deployment = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "shop-app", "namespace": ns},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}},
            },
        }
        cluster.kubectl("apply", "-f", "-", input=json.dumps(deployment))

        def pods() -> list[str]:
            listed = cluster.kubectl("get", "pods", "-n", ns, "-l", "app=shop-app", "-o", "json")
            return [p["metadata"]["name"] for p in json.loads(listed.stdout)["items"]]

        (first,) = wait_for(lambda: pods() or None, timeout=60, what="the app's pod")
        connected = wait_for(lambda: _connected(cluster, ns, first), timeout=120, what="login")
        assert connected == ["shop_app", "shop", True]  # over TLS

        # Rotation: the app restarts on change (its env holds the URL), the role gets the
        # new password, the new pod logs in with the new URL; the old password is dead.
        patch = {
            "spec": {
                "rotation": {"generated": {}},
                "target": {"restartOnChange": [{"kind": "Deployment", "name": "shop-app"}]},
            }
        }
        cluster.kubectl("patch", "ms", "shop-db", "-n", ns, "--type=merge", "-p", json.dumps(patch))
        cluster.kubectl("annotate", "ms", "shop-db", "-n", ns, "kustos.io/rotate-now=1")

        def rotated() -> str | None:
            new = secret_data(get(cluster, "secret", "shop-db", ns) or {})["password"]
            return new if new != password else None

        second_password = wait_for(rotated, timeout=120, what="rotated")
        _set_login(pod_pg, second_password)
        assert not pod_pg.can_login("shop_app", password, dbname="shop")

        def restarted() -> list[Any] | None:
            new = [p for p in pods() if p != first]
            return _connected(cluster, ns, new[0]) if len(new) == 1 else None

        assert wait_for(restarted, timeout=180, what="the new pod's login") == [
            "shop_app",
            "shop",
            True,
        ]
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


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
