"""The operator against a real kube-apiserver: versions, projection, drift, GC, restart."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import pytest
from tests.kube_helpers import (
    apply,
    condition,
    event_reasons,
    get,
    managed_secret,
    new_namespace,
    present,
    ready,
    secret_data,
    wait_for,
)

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster(kube_cluster: Any) -> Any:
    kube_cluster.apply_crds()
    return kube_cluster


@pytest.fixture
def operator(operator_factory: Any) -> Any:
    runner = operator_factory()
    runner.start()
    return runner


GENERATE = {
    "generate": {"passwordLength": 24, "excludePunctuation": True, "keys": ["password"]},
    "target": {"type": "kubernetes.io/basic-auth", "staticData": {"username": "app"}},
}


def test_create_projects_version_one(cluster: Any, operator: Any) -> None:
    ns = new_namespace(cluster)
    apply(
        cluster,
        managed_secret(
            "orders-db",
            ns,
            {"name": "prod/payments/orders-db", "description": "orders", **GENERATE},
        ),
    )
    obj = wait_for(lambda: ready(cluster, "orders-db", ns), what="Ready")
    status = obj["status"]
    assert status["arn"].startswith(
        f"arn:kustos:secretsmanager:test:{ns}:secret:prod/payments/orders-db-"
    )
    assert len(status["arn"].rsplit("-", 1)[1]) == 6
    assert status["secretName"] == "prod/payments/orders-db"
    assert [v["stages"] for v in status["versions"]] == [["AWSCURRENT"]]
    assert status["versions"][0]["versionId"] == status["currentVersionId"]

    secret = get(cluster, "secret", "orders-db", ns)
    assert secret is not None
    assert secret["type"] == "kubernetes.io/basic-auth"
    data = secret_data(secret)
    assert data["username"] == "app"
    assert len(data["password"]) == 24 and data["password"].isalnum()
    owner = secret["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == (
        "ManagedSecret",
        obj["metadata"]["uid"],
        True,
    )
    assert secret["metadata"]["labels"]["kustos.io/version-id"] == status["currentVersionId"]
    assert secret["metadata"]["annotations"]["kustos.io/version-id"] == status["currentVersionId"]

    reasons = wait_for(
        lambda: (r := event_reasons(cluster, "orders-db", ns)) and "Created" in r and r,
        what="events",
    )
    assert "Warning" not in json.dumps(reasons)
    assert reasons == ["Created"]  # a new object's first story is one Event
    # kubectl describe tells the story: created, its first version, projected
    described = cluster.kubectl("describe", "ms", "orders-db", "-n", ns).stdout
    version = status["currentVersionId"]
    for part in ("Created", f"version {version} added as AWSCURRENT", "projected into Secret"):
        assert part in described
    # printer columns
    table = cluster.kubectl("get", "ms", "-n", ns).stdout
    assert "SECRET NAME" in table and "prod/payments/orders-db" in table
    assert status["currentVersionId"] in table
    # kubectl wait works on the Ready condition
    cluster.kubectl("wait", "--for=condition=Ready", "ms/orders-db", "-n", ns, "--timeout=5s")


def test_source_change_adds_version_and_moves_labels(cluster: Any, operator: Any) -> None:
    ns = new_namespace(cluster)
    apply(cluster, managed_secret("app", ns, GENERATE))
    first = wait_for(lambda: ready(cluster, "app", ns))["status"]["currentVersionId"]
    old_password = secret_data(get(cluster, "secret", "app", ns) or {})["password"]

    # A change that is not the value source: no new version.
    cluster.kubectl(
        "patch",
        "ms",
        "app",
        "-n",
        ns,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"description": "changed"}}),
    )
    obj = wait_for(lambda: ready(cluster, "app", ns))
    assert obj["status"]["currentVersionId"] == first
    assert len(obj["status"]["versions"]) == 1

    cluster.kubectl(
        "patch",
        "ms",
        "app",
        "-n",
        ns,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"generate": {"passwordLength": 40}}}),
    )
    obj = wait_for(
        lambda: (o := ready(cluster, "app", ns)) and o["status"]["currentVersionId"] != first and o
    )
    stages = {v["versionId"]: v["stages"] for v in obj["status"]["versions"]}
    assert stages[first] == ["AWSPREVIOUS"]
    assert stages[obj["status"]["currentVersionId"]] == ["AWSCURRENT"]
    secret = wait_for(
        lambda: (
            s
            if (s := get(cluster, "secret", "app", ns)) and len(secret_data(s)["password"]) == 40
            else None
        )
    )
    assert secret_data(secret)["password"] != old_password


def test_drift_is_corrected(cluster: Any, operator: Any) -> None:
    ns = new_namespace(cluster)
    apply(cluster, managed_secret("drifty", ns, GENERATE))
    wait_for(lambda: ready(cluster, "drifty", ns))
    original = secret_data(get(cluster, "secret", "drifty", ns) or {})

    cluster.kubectl(
        "patch",
        "secret",
        "drifty",
        "-n",
        ns,
        "--type=merge",
        "-p",
        json.dumps({"stringData": {"password": "tampered"}}),
    )
    wait_for(
        lambda: secret_data(get(cluster, "secret", "drifty", ns) or {}) == original,
        what="edit reverted",
    )
    cluster.kubectl("delete", "secret", "drifty", "-n", ns)
    wait_for(
        lambda: (s := get(cluster, "secret", "drifty", ns)) and secret_data(s) == original,
        what="deleted Secret restored",
    )
    assert event_reasons(cluster, "drifty", ns).count("DriftCorrected") >= 1


def test_the_secrets_watch_restores_an_edit_or_deletion_without_the_periodic_pass(
    cluster: Any, operator_factory: Any
) -> None:
    # Both periodic passes an hour away: only the watch of projected Secrets can restore.
    runner = operator_factory(KUSTOS_DRIFT_CHECK_SECONDS="3600", KUSTOS_RESYNC_SECONDS="3600")
    runner.start()
    ns = new_namespace(cluster)
    apply(cluster, managed_secret("watched", ns, GENERATE))
    wait_for(lambda: ready(cluster, "watched", ns), what="Ready")
    original = secret_data(get(cluster, "secret", "watched", ns) or {})

    def restored() -> bool:
        found = get(cluster, "secret", "watched", ns)
        return found is not None and secret_data(found) == original

    cluster.kubectl(
        "patch",
        "secret",
        "watched",
        "-n",
        ns,
        "--type=merge",
        "-p",
        json.dumps({"stringData": {"password": "tampered"}}),
    )
    # Seconds, against a periodic pass of an hour (generous for a loaded 2-core machine).
    wait_for(restored, timeout=10, what="the edit reverted by the watch")
    cluster.kubectl("delete", "secret", "watched", "-n", ns)
    wait_for(restored, timeout=10, what="the deleted Secret restored by the watch")
    assert event_reasons(cluster, "watched", ns).count("DriftCorrected") >= 1


def test_projected_secret_is_garbage_collected(cluster: Any, operator: Any) -> None:
    ns = new_namespace(cluster)
    apply(cluster, managed_secret("gone", ns, GENERATE))
    wait_for(lambda: ready(cluster, "gone", ns))
    assert get(cluster, "secret", "gone", ns) is not None
    cluster.kubectl("delete", "ms", "gone", "-n", ns)
    wait_for(lambda: get(cluster, "secret", "gone", ns) is None, what="garbage collection")


def test_value_from_secret_ref(cluster: Any, operator: Any) -> None:
    ns = new_namespace(cluster)
    other = new_namespace(cluster)
    spec = {"valueFrom": {"secretRef": {"name": "src"}}, "target": {"name": "copied"}}
    apply(cluster, managed_secret("from-ref", ns, spec))
    obj = wait_for(
        lambda: (
            o
            if (o := get(cluster, "ms", "from-ref", ns))
            and (c := condition(o))
            and c["reason"] == "SourceNotFound"
            else None
        )
    )
    assert present(condition(obj))["status"] == "False"

    cluster.kubectl(
        "create",
        "secret",
        "generic",
        "src",
        "-n",
        ns,
        "--from-literal=user=u1",
        "--from-literal=pass=p1",
    )
    # The source has not opted in: nothing is copied.
    obj = wait_for(
        lambda: (
            o
            if (o := get(cluster, "ms", "from-ref", ns))
            and (c := condition(o))
            and c["reason"] == "SourceNotAllowed"
            else None
        )
    )
    assert "kustos.io/allow-import-by=from-ref" in present(condition(obj))["message"]
    assert get(cluster, "secret", "copied", ns) is None
    cluster.kubectl("annotate", "secret", "src", "-n", ns, "kustos.io/allow-import-by=from-ref")
    wait_for(lambda: ready(cluster, "from-ref", ns), timeout=90)
    copied = get(cluster, "secret", "copied", ns)
    assert copied is not None and secret_data(copied) == {"user": "u1", "pass": "p1"}

    # The source changes: a new version follows.
    cluster.kubectl(
        "patch",
        "secret",
        "src",
        "-n",
        ns,
        "--type=merge",
        "-p",
        json.dumps({"stringData": {"pass": "p2"}}),
    )
    wait_for(lambda: secret_data(get(cluster, "secret", "copied", ns) or {}).get("pass") == "p2")
    obj = get(cluster, "ms", "from-ref", ns) or {}
    assert len(obj["status"]["versions"]) == 2

    # A reference into another namespace is refused, and nothing is copied.
    cluster.kubectl("create", "secret", "generic", "theirs", "-n", other, "--from-literal=k=v")
    apply(
        cluster,
        managed_secret(
            "sneaky", ns, {"valueFrom": {"secretRef": {"name": "theirs", "namespace": other}}}
        ),
    )
    obj = wait_for(lambda: (o := get(cluster, "ms", "sneaky", ns)) and condition(o) and o)
    assert present(condition(obj))["reason"] == "SourceInvalid"
    assert get(cluster, "secret", "sneaky", ns) is None


def test_target_collision_never_overwrites(cluster: Any, operator: Any) -> None:
    ns = new_namespace(cluster)
    cluster.kubectl("create", "secret", "generic", "taken", "-n", ns, "--from-literal=mine=1")
    apply(cluster, managed_secret("collide", ns, {**GENERATE, "target": {"name": "taken"}}))
    apply(cluster, managed_secret("fine", ns, GENERATE))
    obj = wait_for(lambda: (o := get(cluster, "ms", "collide", ns)) and condition(o) and o)
    assert present(condition(obj))["reason"] == "TargetConflict"
    assert secret_data(get(cluster, "secret", "taken", ns) or {}) == {"mine": "1"}
    # The broken one does not stop the others.
    wait_for(lambda: ready(cluster, "fine", ns))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"generate": {}, "valueFrom": {"secretRef": {"name": "x"}}}, "mutually exclusive"),
        ({"name": "bad name!"}, "spec.name"),
        (
            {
                "generate": {
                    "excludeNumbers": True,
                    "excludePunctuation": True,
                    "excludeUppercase": True,
                    "excludeLowercase": True,
                }
            },
            "every character",
        ),
        ({"generate": {"passwordLength": 0}}, "passwordLength"),
        (
            {"generate": {"keys": ["password"]}, "target": {"staticData": {"password": "x"}}},
            "staticData",
        ),
        ({"recoveryWindowInDays": 3}, "recoveryWindowInDays"),
        ({"tags": {"aws:reserved": "x"}}, "aws:"),
    ],
)
def test_admission_rejects_bad_specs(cluster: Any, spec: dict[str, Any], message: str) -> None:
    ns = new_namespace(cluster)
    proc = cluster.kubectl(
        "apply", "-f", "-", check=False, input=json.dumps(managed_secret("bad", ns, spec))
    )
    assert proc.returncode != 0
    assert message in proc.stderr
    assert get(cluster, "ms", "bad", ns) is None


def test_name_is_immutable(cluster: Any) -> None:
    ns = new_namespace(cluster)
    apply(cluster, managed_secret("fixed", ns, {"name": "a/b"}))
    proc = cluster.kubectl(
        "patch",
        "ms",
        "fixed",
        "-n",
        ns,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"name": "c/d"}}),
        check=False,
    )
    assert proc.returncode != 0 and "immutable" in proc.stderr


def test_restart_creates_nothing_and_writes_nothing(cluster: Any, operator: Any) -> None:
    ns = new_namespace(cluster)
    for i in range(3):
        apply(cluster, managed_secret(f"r{i}", ns, GENERATE))
    before = {i: wait_for(partial(ready, cluster, f"r{i}", ns)) for i in range(3)}
    secrets_before = {i: get(cluster, "secret", f"r{i}", ns) for i in range(3)}
    operator.stop()
    operator.start()
    # Let the restarted operator resume every object and run its periodic check twice.
    import time

    time.sleep(8)
    for i in range(3):
        after = get(cluster, "ms", f"r{i}", ns) or {}
        assert after["metadata"]["resourceVersion"] == before[i]["metadata"]["resourceVersion"]
        assert after["status"]["versions"] == before[i]["status"]["versions"]
        secret = get(cluster, "secret", f"r{i}", ns) or {}
        assert (
            secret["metadata"]["resourceVersion"]
            == present(secrets_before[i])["metadata"]["resourceVersion"]
        )


def test_the_count_the_orphan_sweep_asks_for_is_the_listings_length(cluster: Any) -> None:
    """One LIST of a single item (`remainingItemCount`) counts what a complete paged
    listing returns; the sweep at rest asks for it instead of listing every object."""
    from kustos.kube.managed_objects import ManagedObjectGateway

    ns = new_namespace(cluster)
    for n in range(3):
        apply(cluster, managed_secret(f"counted-{n}", ns, {"name": f"counted/{n}"}))
    objects = ManagedObjectGateway(cluster.api_client())
    seen: list[tuple[int | None, int]] = []

    def agree() -> bool:  # other modules' objects may still be going away: ask again
        before, listed, after = objects.count(), len(objects.list_all(page_size=2)), objects.count()
        seen.append((before, listed))
        return before == listed == after

    wait_for(agree, timeout=60, what="count() to equal the listing length")
    assert seen[-1][1] >= 3
