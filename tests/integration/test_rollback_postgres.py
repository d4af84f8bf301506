"""Rotation with consumers and rollback against real PostgreSQL (alternating users): the
previous user keeps logging in until every consumer rolled out, is retired then, and a
rollback gives it its password back (setSecret + testSecret) before AWSCURRENT moves. A
rollback to a version of AWSCURRENT's own user (two rotations back) is refused, since it
would lock AWSCURRENT's logins out, unless forced, which does lock them out.
The controller, rotation, rollback and restart services are the real ones; Kubernetes is
the in-memory fake of the unit tier (the node e2e covers the cluster side)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
from tests.rotation_helpers import make_db_user
from tests.unit.fakes import FakeSecrets
from tests.unit.rollout_fakes import World, deployment

from kustos.models.reasons import EventType, Reason
from kustos.services.controller.controller import Trigger

pytestmark = pytest.mark.db


def _secret(name: str, data: dict[str, str], annotations: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "team-a", "annotations": annotations},
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


@pytest.fixture
def world(pg_server: Any) -> Iterator[tuple[World, Any]]:
    user, password, dbname = make_db_user(pg_server)
    kube = FakeSecrets()
    kube.create(
        "team-a",
        _secret(
            "db-initial",
            {
                "username": user,
                "password": password,
                "host": pg_server.host,
                "port": str(pg_server.port),
                "dbname": dbname,
            },
            {"kustos.io/allow-import-by": "db"},
        ),
    )
    kube.create(
        "team-a",
        _secret(
            "db-master",
            {"username": pg_server.admin_user, "password": pg_server.admin_password},
            {"kustos.io/allow-import-by": "db"},
        ),
    )
    kube.create("team-a", _secret("db-ca", {"ca.crt": pg_server.ca_path.read_text()}, {}))
    spec = {
        "name": "prod/db",
        "valueFrom": {"secretRef": {"name": "db-initial"}},
        "rotation": {
            "rolloutTimeoutSeconds": 60,
            "postgresql": {
                "strategy": "alternating-users",
                "connectTimeoutSeconds": 3,
                "masterSecretRef": {"name": "db-master"},
                "tls": {"mode": "verify-full", "caSecretRef": {"name": "db-ca"}},
            },
        },
    }
    built = World(deployment("web"), spec=spec, gateway=kube)
    yield built, pg_server
    built.store.close()


def _creds(world: World, version_id: str) -> dict[str, Any]:
    record = world.store.get_secret("team-a", "prod/db")
    assert record is not None
    found = world.store.get_version(record.arn, version_id=version_id)
    assert found is not None
    return dict(world.secrets.open(found).as_mapping() or {})


def _logs_in(server: Any, creds: dict[str, Any]) -> bool:
    return bool(server.can_login(creds["username"], creds["password"], dbname=creds["dbname"]))


def test_previous_user_retired_after_rollout_and_rollback_restores_it(
    world: tuple[World, Any],
) -> None:
    w, server = world
    first = w.current()
    assert w.last.error is None, w.last.error
    w.rotate("r1")
    assert w.last.error is None, w.last.error
    second = w.current()
    old, new = _creds(w, first), _creds(w, second)
    assert new["username"] == old["username"] + "_clone"
    # finishSecret done, web not rolled out: both users log in
    assert _logs_in(server, old) and _logs_in(server, new)
    w.flush_restarts()
    w.tick(3)
    assert _logs_in(server, old)  # still rolling: not retired
    w.workloads.roll_out("web")
    w.tick(3)
    assert Reason.CREDENTIALS_RETIRED in w.events.reasons()
    assert not _logs_in(server, old) and _logs_in(server, new)  # retired only now

    w.body["metadata"]["annotations"]["kustos.io/rollback"] = "previous"
    w.body = w.apply(w.body, frozenset({Trigger.CHANGED}))
    assert w.last.error is None, w.last.error
    assert w.current() == first and w.projected_version() == first
    assert _logs_in(server, old) and _logs_in(server, new)  # accepted again, then moved
    assert "postgresql accepts it again" in w.body["status"]["rollback"]["message"]
    assert old["password"] not in str(w.body) and old["password"] not in str(w.events.emitted)


def _rotate_to_the_end(w: World, value: str) -> str:
    """A rotation whose consumer rolls out (the previous user retired); the new AWSCURRENT."""
    w.rotate(value)
    assert w.last.error is None, w.last.error
    w.flush_restarts()
    w.workloads.roll_out("web")
    w.tick(3)
    assert Reason.CREDENTIALS_RETIRED in w.events.reasons()
    return w.current()


def _roll_back(w: World, request: str) -> dict[str, Any]:
    w.body["metadata"]["annotations"]["kustos.io/rollback"] = request
    w.body = w.apply(w.body, frozenset({Trigger.CHANGED}))
    return dict(w.body["status"]["rollback"])


def test_rollback_to_awscurrents_own_user_is_refused_unless_forced(
    world: tuple[World, Any],
) -> None:
    w, server = world
    v1 = w.current()
    v2 = _rotate_to_the_end(w, "r1")
    v3 = _rotate_to_the_end(w, "r2")
    one, two, three = _creds(w, v1), _creds(w, v2), _creds(w, v3)
    assert one["username"] == three["username"] != two["username"]
    assert _logs_in(server, three) and not _logs_in(server, one) and not _logs_in(server, two)

    answer = _roll_back(w, f"{v1}#1")
    assert answer["state"] == "Refused"
    assert f"AWSPREVIOUS (version {v2}, user {two['username']}" in answer["message"]
    assert w.current() == v3 and w.projected_version() == v3
    # PostgreSQL untouched: AWSCURRENT's user still logs in with AWSCURRENT, not with v1
    assert _logs_in(server, three) and not _logs_in(server, one)
    condition = next(c for c in w.body["status"]["conditions"] if c["type"] == "RollbackRefused")
    assert condition["status"] == "True" and condition["reason"] == "RollbackRefused"
    assert (Reason.ROLLBACK_REFUSED, EventType.WARNING) in [
        (reason, kind) for _, reason, _, kind in w.events.emitted
    ]

    answer = _roll_back(w, f"force:{v1}#2")
    assert answer["state"] == "Succeeded" and answer["forced"] is True
    assert w.current() == v1 and w.projected_version() == v1
    # what the refusal protected: the pods still on v3 (the same user) can no longer log in
    assert _logs_in(server, one) and not _logs_in(server, three)
    assert "postgresql accepts it again" in answer["message"]
    (warning,) = [m for _, r, m, _ in w.events.emitted if r is Reason.ROLLBACK_FORCED]
    assert "fail new logins until they are restarted" in warning
    for creds in (one, two, three):
        assert creds["password"] not in str(w.body)
        assert creds["password"] not in str(w.events.emitted)
