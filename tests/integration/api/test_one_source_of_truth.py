"""The API and kubectl see one set of secrets: CreateSecret makes a ManagedSecret and its
projected Secret; a kubectl-applied ManagedSecret is usable through the API; deletion and
restore work from either side and end in the same state."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from tests.kube_helpers import (
    apply,
    events,
    get,
    managed_secret,
    present,
    ready,
    secret_data,
    wait_for,
)

pytestmark = pytest.mark.cluster


def test_api_created_secret_is_a_managed_secret(world: Any, sm: Any, ns: str) -> None:
    arn = sm.create_secret(
        Name="prod/payments/db",
        Description="orders",
        SecretString=json.dumps({"username": "app", "password": "p1"}),
        Tags=[{"Key": "team", "Value": "pay"}],
    )["ARN"]
    obj = wait_for(lambda: ready(world.cluster, "prod-payments-db", ns), what="Ready")
    assert obj["spec"] == {
        "name": "prod/payments/db",
        "description": "orders",
        "tags": {"team": "pay"},
    }
    assert obj["status"]["arn"] == arn
    secret = wait_for(lambda: get(world.cluster, "secret", "prod-payments-db", ns))
    assert secret_data(secret) == {"username": "app", "password": "p1"}
    # a new value is projected (by the operator's resync) and tags reach the spec
    sm.put_secret_value(SecretId=arn, SecretString=json.dumps({"password": "p2"}))
    sm.tag_resource(SecretId=arn, Tags=[{"Key": "tier", "Value": "gold"}])
    wait_for(
        lambda: (
            secret_data(get(world.cluster, "secret", "prod-payments-db", ns) or {})
            == {"password": "p2"}
        ),
        what="new value projected",
    )
    spec = present(get(world.cluster, "ms", "prod-payments-db", ns))["spec"]
    assert spec["tags"] == {"team": "pay", "tier": "gold"}
    # uppercase and other characters get a hashed object name
    sm.create_secret(Name="Weird_Name", SecretString="w")
    names = json.loads(world.cluster.kubectl("get", "ms", "-n", ns, "-o", "json").stdout)
    weird = [o for o in names["items"] if o["spec"].get("name") == "Weird_Name"]
    assert len(weird) == 1 and weird[0]["metadata"]["name"].startswith("weird-name-")


def test_kubectl_created_secret_is_readable_through_api(world: Any, sm: Any, ns: str) -> None:
    apply(
        world.cluster,
        managed_secret(
            "orders",
            ns,
            {
                "name": "team/orders",
                "tags": {"env": "prod"},
                "generate": {"passwordLength": 20, "excludePunctuation": True},
            },
        ),
    )
    obj = wait_for(lambda: ready(world.cluster, "orders", ns), what="Ready")
    got = sm.get_secret_value(SecretId="team/orders")
    assert got["ARN"] == obj["status"]["arn"]
    assert got["VersionId"] == obj["status"]["currentVersionId"]
    projected = secret_data(present(get(world.cluster, "secret", "orders", ns)))
    assert json.loads(got["SecretString"]) == projected
    assert sm.describe_secret(SecretId="team/orders")["Tags"] == [{"Key": "env", "Value": "prod"}]


def test_delete_secret_removes_object_and_restore_brings_it_back(
    world: Any, sm: Any, ns: str
) -> None:
    arn = sm.create_secret(Name="svc/key", SecretString="k1")["ARN"]
    wait_for(lambda: get(world.cluster, "secret", "svc-key", ns), what="projected")
    sm.delete_secret(SecretId=arn)  # default window: 30 days
    wait_for(lambda: get(world.cluster, "ms", "svc-key", ns) is None, what="object deleted")
    wait_for(lambda: get(world.cluster, "secret", "svc-key", ns) is None, what="Secret gone")
    described = sm.describe_secret(SecretId=arn)
    window = described["DeletedDate"] - described["LastChangedDate"]
    assert 29 <= window.days <= 30
    # the same Events (and audit records, which notifications follow) as kubectl delete
    scheduled = wait_for(
        lambda: [
            e for e in events(world.cluster, "svc-key", ns) if e["reason"] == "DeletionScheduled"
        ],
        what="Event",
    )
    assert "svc/key scheduled for deletion" in scheduled[0]["message"]
    sm.restore_secret(SecretId=arn)
    wait_for(lambda: ready(world.cluster, "svc-key", ns), what="object recreated")
    secret = wait_for(lambda: get(world.cluster, "secret", "svc-key", ns), what="re-projected")
    assert secret_data(secret) == {"value": "k1"}
    assert sm.get_secret_value(SecretId=arn)["SecretString"] == "k1"
    wait_for(
        lambda: [e for e in events(world.cluster, "svc-key", ns) if e["reason"] == "Restored"],
        what="Restored Event",
    )
    out = json.loads(world.kustos("audit", "lookup", "--max-items", "500").stdout)["Events"]
    lifecycle = [json.loads(e["CloudTrailEvent"]) for e in out]
    names = {
        r["eventName"]
        for r in lifecycle
        if r.get("eventType") == "AwsServiceEvent"
        and any(res.get("ARN") == arn for res in r.get("resources") or [])
    }
    assert {"DeletionScheduled", "Restored"} <= names


def test_kubectl_delete_schedules_deletion_and_restore_recreates(
    world: Any, sm: Any, ns: str
) -> None:
    apply(
        world.cluster,
        managed_secret(
            "legacy",
            ns,
            {
                "name": "legacy/db",
                "recoveryWindowInDays": 7,
                "target": {"staticData": {"host": "db.local"}},
                "generate": {"passwordLength": 16, "excludePunctuation": True},
            },
        ),
    )
    obj = wait_for(lambda: ready(world.cluster, "legacy", ns), what="Ready")
    value = sm.get_secret_value(SecretId="legacy/db")["SecretString"]
    world.cluster.kubectl("delete", "ms", "legacy", "-n", ns)

    def scheduled() -> bool:
        try:
            sm.get_secret_value(SecretId="legacy/db")
        except ClientError as exc:
            code: str = exc.response["Error"]["Code"]
            return code == "InvalidRequestException"
        return False

    wait_for(scheduled, what="deletion scheduled")
    described = sm.describe_secret(SecretId=obj["status"]["arn"])
    assert 6 <= (described["DeletedDate"] - described["LastChangedDate"]).days <= 7
    wait_for(lambda: get(world.cluster, "secret", "legacy", ns) is None, what="Secret gone")
    sm.restore_secret(SecretId="legacy/db")
    restored = wait_for(lambda: ready(world.cluster, "legacy", ns), what="recreated")
    assert restored["spec"]["target"]["staticData"] == {"host": "db.local"}
    assert restored["status"]["arn"] == obj["status"]["arn"]
    data = secret_data(wait_for(lambda: get(world.cluster, "secret", "legacy", ns)))
    assert data == {**json.loads(value), "host": "db.local"}
    assert sm.get_secret_value(SecretId="legacy/db")["SecretString"] == value  # no new version
