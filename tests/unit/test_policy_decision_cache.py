"""Cached policy decisions (`DecisionCache` in `AccessService.authorize`): reused only while
the policies they were made under are in force, never across a policy change, never when a
policy reads the clock, never across requests whose condition keys differ.

The listing is faked (no I/O) and the index's clock is driven by the test; the same bound
is checked under load against real server processes in
tests/integration/test_api_replicas.py::test_a_removed_policy_denies_on_every_replica_within_its_bound.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.unit.fakes import stand_in
from tests.unit.test_access_authorize import APP, SA_APP, sap, secret

from kustos.errors import AccessDeniedError
from kustos.services.access.authorize import AccessService
from kustos.services.access.keys import AccessKeyService
from kustos.services.access.policies import PolicyIndex
from kustos.services.access.tokens import TokenAuthenticator, TokenReviewer

TTL = 3.0
ALLOW_ALL = {
    "Version": "2012-10-17",
    "Statement": {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
}


class World:
    def __init__(self) -> None:
        self.namespaced: list[dict[str, Any]] = []
        self.monotonic = 100.0
        self.now = datetime(2030, 1, 1, tzinfo=UTC)
        self.index = PolicyIndex(
            lambda: (self.namespaced, []), ttl=TTL, clock=lambda: self.monotonic
        )
        self.access = AccessService(
            TokenAuthenticator(stand_in(TokenReviewer, None)),
            stand_in(AccessKeyService, None),
            self.index,
            region="test",
            clock=lambda: self.now,
        )

    def allowed(self, record: Any = None, **context: Any) -> bool:
        try:
            self.access.authorize(APP, "GetSecretValue", record or secret("db"), context)
        except AccessDeniedError:
            return False
        return True

    @property
    def hits(self) -> int:
        return self.access._decisions.hits


@pytest.fixture
def world() -> World:
    return World()


def test_a_decision_is_reused_while_the_policies_stand(world: World) -> None:
    world.namespaced.append(sap("all", "team-a", SA_APP, ALLOW_ALL))
    assert world.allowed()
    assert world.hits == 0
    for _ in range(5):
        assert world.allowed()
    assert world.hits == 5
    world.monotonic += TTL  # re-listed: same policies, same generation, still reused
    assert world.allowed()
    assert world.hits == 6


def test_a_removed_policy_denies_once_the_index_relists(world: World) -> None:
    world.namespaced.append(sap("all", "team-a", SA_APP, ALLOW_ALL))
    assert world.allowed() and world.allowed()
    world.namespaced.clear()
    world.monotonic += TTL - 0.01
    assert world.allowed()  # within the bound: the index has not re-listed yet
    world.monotonic += 0.01
    assert not world.allowed()  # the re-list moved the generation: nothing cached is used
    assert not world.allowed()


def test_a_changed_policy_is_a_new_generation(world: World) -> None:
    world.namespaced.append(sap("all", "team-a", SA_APP, ALLOW_ALL))
    assert world.allowed()
    deny = {
        "Version": "2012-10-17",
        "Statement": [
            ALLOW_ALL["Statement"],
            {"Effect": "Deny", "Action": "secretsmanager:GetSecretValue", "Resource": "*"},
        ],
    }
    changed = sap("all", "team-a", SA_APP, deny)
    changed["metadata"]["resourceVersion"] = "2"
    world.namespaced[:] = [changed]
    world.monotonic += TTL
    assert not world.allowed()


def test_a_resource_policy_change_takes_effect_at_once(world: World) -> None:
    world.namespaced.append(sap("all", "team-a", SA_APP, ALLOW_ALL))
    open_record = secret("db")
    assert world.allowed(open_record) and world.allowed(open_record)
    closed = secret(
        "db",
        resource_policy={
            "Version": "2012-10-17",
            "Statement": {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "secretsmanager:*",
                "Resource": "*",
            },
        },
    )
    assert not world.allowed(closed)  # same secret, new resource policy: no index re-list
    assert world.allowed(open_record)


def test_condition_keys_are_part_of_the_key(world: World) -> None:
    world.namespaced.append(
        sap(
            "net",
            "team-a",
            SA_APP,
            {
                "Version": "2012-10-17",
                "Statement": {
                    "Effect": "Allow",
                    "Action": "secretsmanager:*",
                    "Resource": "*",
                    "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
                },
            },
        )
    )
    assert world.allowed(**{"aws:SourceIp": "10.1.2.3"})
    assert not world.allowed(**{"aws:SourceIp": "192.168.1.1"})
    assert world.allowed(**{"aws:SourceIp": "10.1.2.3"})
    assert not world.allowed(**{"aws:SourceIp": "192.168.1.1"})
    assert world.hits == 2
    tagged = secret("db", tags={"team": "x"})
    assert world.allowed(tagged, **{"aws:SourceIp": "10.1.2.3"})
    assert world.hits == 2  # another secret record (tags): evaluated, not reused


def test_a_policy_that_reads_the_clock_is_never_cached(world: World) -> None:
    until = "2030-01-01T00:00:10Z"
    world.namespaced.append(
        sap(
            "until",
            "team-a",
            SA_APP,
            {
                "Version": "2012-10-17",
                "Statement": {
                    "Effect": "Allow",
                    "Action": "secretsmanager:*",
                    "Resource": "*",
                    "Condition": {"DateLessThan": {"aws:CurrentTime": until}},
                },
            },
        )
    )
    assert world.allowed() and world.allowed()
    world.now += timedelta(seconds=11)
    assert not world.allowed()
    assert world.hits == 0


def test_a_clock_variable_also_counts_as_reading_the_clock(world: World) -> None:
    world.namespaced.append(
        sap(
            "v",
            "team-a",
            SA_APP,
            {
                "Version": "2012-10-17",
                "Statement": {
                    "Effect": "Allow",
                    "Action": "secretsmanager:*",
                    "Resource": "arn:kustos:secretsmanager:test:team-a:secret:${aws:EpochTime}*",
                },
            },
        )
    )
    assert not world.allowed()
    assert not world.allowed()
    assert world.hits == 0
    compiled = world.index.policies()[0].policy
    assert compiled is not None
    assert compiled.reads_clock


def test_a_cached_denial_is_still_reported_as_a_denial(world: World) -> None:
    with pytest.raises(AccessDeniedError, match="GetSecretValue"):
        world.access.authorize(APP, "GetSecretValue", secret("db"), {})
    with pytest.raises(AccessDeniedError, match="GetSecretValue"):
        world.access.authorize(APP, "GetSecretValue", secret("db"), {})
    assert world.hits == 1
