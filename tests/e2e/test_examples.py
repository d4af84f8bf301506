"""Every example under examples/ is applied to the real cluster with the real operator."""

from __future__ import annotations

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
    assert sorted(p.name for p in EXAMPLES.iterdir() if p.is_dir()) == [
        "01-generated-password",
        "02-from-existing-secret",
        "03-app-reads-secret",
        "04-database-url",
        "05-boto3-no-static-key",
        "06-javascript-no-static-key",
        "07-env-app-through-rotations",
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
