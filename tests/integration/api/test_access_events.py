"""Access tells its story in `kubectl describe ms`: reads aggregated, denials one by one."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from tests.api_fixture import ApiWorld, Identity
from tests.kube_helpers import events, wait_for

pytestmark = pytest.mark.cluster


def test_reads_are_aggregated_and_denials_name_the_caller(
    world: ApiWorld, ns: str, ident: Identity, sm: Any
) -> None:
    created = sm.create_secret(Name="team/events-db", SecretString="kustos-canary-ev-123")
    object_name = "team-events-db"
    wait_for(
        lambda: (
            world.cluster.kubectl("get", "ms", object_name, "-n", ns, check=False).returncode == 0
        )
    )
    for _ in range(5):
        assert sm.get_secret_value(SecretId=created["ARN"])["SecretString"]

    outsider = world.identity(ns, "outsider", policy=False)
    with pytest.raises(ClientError) as denied:
        world.client(outsider).get_secret_value(SecretId=created["ARN"])
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"

    def story() -> list[dict[str, Any]] | None:
        evs = events(world.cluster, object_name, ns)
        accessed = [e for e in evs if e["reason"] == "Accessed"]
        refused = [e for e in evs if e["reason"] == "AccessDenied"]
        return evs if accessed and refused else None

    evs = wait_for(story, timeout=30, what="Accessed and AccessDenied Events")
    accessed = [e for e in evs if e["reason"] == "Accessed"]
    # Five reads became one Event (possibly split over two windows), naming the reader.
    assert len(accessed) <= 2
    assert (
        sum(
            int(e["message"].split(" times")[0].split()[-1]) if "times" in e["message"] else 1
            for e in accessed
        )
        == 5
    )
    assert all(f"serviceaccount/{ident.service_account}" in e["message"] for e in accessed)
    refused = next(e for e in evs if e["reason"] == "AccessDenied")
    assert refused["type"] == "Warning"
    assert "serviceaccount/outsider" in refused["message"]
    described = world.cluster.kubectl("describe", "ms", object_name, "-n", ns).stdout
    assert "Accessed" in described and "AccessDenied" in described
    assert "kustos-canary-ev-123" not in str(evs) + described
