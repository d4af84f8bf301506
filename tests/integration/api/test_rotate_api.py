"""RotateSecret over the API: the operator rotates, the ClientRequestToken is the version."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError
from tests.api_fixture import ApiWorld
from tests.kube_helpers import apply, get, managed_secret, ready, secret_data, wait_for

pytestmark = pytest.mark.cluster


def test_rotate_secret_returns_the_new_version_and_is_idempotent(
    world: ApiWorld, ns: str, sm: Any
) -> None:
    apply(
        world.cluster,
        managed_secret(
            "rot",
            ns,
            {"name": "app/rot", "generate": {"passwordLength": 20}, "rotation": {"generated": {}}},
        ),
    )
    first = wait_for(lambda: ready(world.cluster, "rot", ns))["status"]["currentVersionId"]
    token = str(uuid.uuid4())

    answer = sm.rotate_secret(SecretId="app/rot", ClientRequestToken=token)
    assert answer["VersionId"] == token and answer["Name"] == "app/rot"
    value = wait_for(
        lambda: (v := sm.get_secret_value(SecretId="app/rot")) and v["VersionId"] == token and v,
        timeout=60,
        what="rotated",
    )
    previous = sm.get_secret_value(SecretId="app/rot", VersionStage="AWSPREVIOUS")
    assert previous["VersionId"] == first
    projected = wait_for(
        lambda: (
            (s := get(world.cluster, "secret", "rot", ns))
            and s["metadata"]["annotations"]["kustos.io/version-id"] == token
            and s
        )
    )
    assert secret_data(projected)["password"] == json.loads(value["SecretString"])["password"]

    # The same token again starts nothing new.
    again = sm.rotate_secret(SecretId="app/rot", ClientRequestToken=token)
    assert again["VersionId"] == token
    time.sleep(4)
    versions = sm.list_secret_version_ids(SecretId="app/rot")["Versions"]
    assert len(versions) == 2
    assert {v["VersionId"]: v["VersionStages"] for v in versions} == {
        token: ["AWSCURRENT"],
        first: ["AWSPREVIOUS"],
    }

    # RotationRules become the ManagedSecret's schedule; DescribeSecret shows the next date.
    sm.rotate_secret(
        SecretId="app/rot",
        RotationRules={"ScheduleExpression": "rate(10 days)"},
        RotateImmediately=False,
    )
    obj = get(world.cluster, "ms", "rot", ns) or {}
    assert obj["spec"]["rotation"]["schedule"] == "rate(10 days)"
    described = wait_for(
        lambda: (d := sm.describe_secret(SecretId="app/rot")) and d.get("NextRotationDate") and d,
        timeout=30,
    )
    assert described["RotationEnabled"] is True
    days = (described["NextRotationDate"] - described["LastRotatedDate"]).total_seconds() / 86400
    assert 9.9 < days < 10.1


def test_rotate_secret_without_a_rotator_is_refused(world: ApiWorld, ns: str, sm: Any) -> None:
    sm.create_secret(Name="app/plain", SecretString="v1")
    with pytest.raises(ClientError) as exc:
        sm.rotate_secret(SecretId="app/plain")
    assert exc.value.response["Error"]["Code"] == "InvalidRequestException"
    assert "rotation section" in exc.value.response["Error"]["Message"]
    assert sm.get_secret_value(SecretId="app/plain")["SecretString"] == "v1"
