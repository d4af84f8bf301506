"""spec.target.template against the real kube-apiserver and the real operator: a templated
DATABASE_URL lands in the projected Secret; a broken template keeps the last good Secret,
with Ready=False/TemplateFailed and a Warning Event that never show the value."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import pytest
from tests.kube_helpers import (
    apply,
    condition,
    events,
    get,
    managed_secret,
    new_namespace,
    ready,
    secret_data,
    wait_for,
)

pytestmark = pytest.mark.cluster

URL = (
    "postgresql://{{ static.username }}:{{ secret.password | urlencode }}"
    "@{{ static.host }}:5432/{{ static.dbname }}?sslmode=require"
)
SPEC: dict[str, Any] = {
    "generate": {"passwordLength": 40, "keys": ["password"]},  # punctuation included
    "target": {
        "staticData": {"username": "orders_app", "host": "pg.shop.svc", "dbname": "orders"},
        "template": {"data": {"DATABASE_URL": URL}},
    },
}


@pytest.fixture(scope="module")
def cluster(kube_cluster: Any) -> Any:
    kube_cluster.apply_crds()
    return kube_cluster


def test_templated_url_lands_and_a_broken_template_keeps_the_last_good_secret(
    cluster: Any,
    operator_factory: Any,
) -> None:
    operator = operator_factory()
    operator.start()
    ns = new_namespace(cluster)
    apply(cluster, managed_secret("orders-db", ns, SPEC))
    wait_for(lambda: ready(cluster, "orders-db", ns), what="Ready")
    good = get(cluster, "secret", "orders-db", ns)
    assert good is not None
    data = secret_data(good)
    assert sorted(data) == ["DATABASE_URL"]  # mergePolicy Replace
    url = urllib.parse.urlsplit(data["DATABASE_URL"])
    assert (url.scheme, url.username, url.hostname, url.port, url.path, url.query) == (
        "postgresql",
        "orders_app",
        "pg.shop.svc",
        5432,
        "/orders",
        "sslmode=require",
    )
    password = urllib.parse.unquote(url.password or "")
    assert len(password) == 40

    # A template that would name the value in its error.
    broken = json.loads(json.dumps(SPEC))
    broken["target"]["template"]["data"]["DATABASE_URL"] = "{{ static[secret.password] }}"
    apply(cluster, managed_secret("orders-db", ns, broken))

    def failed() -> dict[str, Any] | None:
        obj = get(cluster, "managedsecret", "orders-db", ns) or {}
        cond = condition(obj)
        return (
            obj
            if cond
            and cond["reason"] == "TemplateFailed"
            and cond.get("observedGeneration") == obj["metadata"]["generation"]
            else None
        )

    obj = wait_for(failed, what="TemplateFailed")
    cond = condition(obj)
    assert cond is not None and cond["status"] == "False"
    assert "data[DATABASE_URL], line 1" in cond["message"]
    warnings = wait_for(
        lambda: [e for e in events(cluster, "orders-db", ns) if e["reason"] == "TemplateFailed"],
        what="Event",
    )
    assert warnings[0]["type"] == "Warning"
    after = get(cluster, "secret", "orders-db", ns)
    assert after is not None and after["data"] == good["data"]  # the last good Secret
    assert after["metadata"]["resourceVersion"] == good["metadata"]["resourceVersion"]

    encoded = urllib.parse.quote(password, safe="")
    seen = json.dumps(obj) + json.dumps(events(cluster, "orders-db", ns)) + operator.log()
    assert password not in seen and encoded not in seen

    # Fixed, it projects again.
    apply(
        cluster,
        managed_secret(
            "orders-db",
            ns,
            {
                **SPEC,
                "target": {
                    **SPEC["target"],
                    "template": {
                        "data": {"DSN": "user={{ static.username }}"},
                        "mergePolicy": "Merge",
                    },
                },
            },
        ),
    )
    wait_for(lambda: ready(cluster, "orders-db", ns), what="Ready again")
    fixed = secret_data(get(cluster, "secret", "orders-db", ns) or {})
    assert fixed["DSN"] == "user=orders_app" and fixed["password"] == password
    assert fixed["host"] == "pg.shop.svc"


def test_admission_refuses_bad_template_keys(cluster: Any) -> None:
    ns = new_namespace(cluster)
    bad = managed_secret("x", ns, {"target": {"template": {"data": {"not a key": "x"}}}})
    proc = cluster.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert proc.returncode != 0 and "valid Secret data keys" in proc.stderr
    wrong = managed_secret(
        "y", ns, {"target": {"template": {"data": {"k": "x"}, "mergePolicy": "Append"}}}
    )
    proc = cluster.kubectl("apply", "-f", "-", input=json.dumps(wrong), check=False)
    assert proc.returncode != 0 and "mergePolicy" in proc.stderr
