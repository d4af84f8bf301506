"""Rollback with alternating users refuses a version of AWSCURRENT's own user: the database
would get that user's old password back, and the pods running on AWSCURRENT (the same
user) would fail new logins until restarted. Refused by default (status, a RollbackRefused
condition, a Warning Event, nothing moved, the database untouched), with the other user's
version named as the safe alternative; `force:` does it anyway and warns. Single-user
rollbacks, which always reset the one user's password, are unchanged.

The real controller, rotation and rollback services on in-memory fakes (a database behind
the shared database strategies); against real PostgreSQL: tests/integration/
test_rollback_postgres.py."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from tests.unit.db_fakes import FakeDb, FakeRotator
from tests.unit.fakes import FakeSecrets
from tests.unit.rollout_fakes import World, deployment

from kustos.models import SecretValue
from kustos.models.reasons import ConditionType, EventType, Reason
from kustos.rotation import SetSecretRequest
from kustos.rotation.registry import register_rotator
from kustos.services.controller.controller import Trigger
from kustos.services.rotation.rollback import parse_request

MASTER = {"username": "admin", "password": "master-password"}
FIRST_PASSWORD = "first-password-0"


def _secret(name: str, data: dict[str, str]) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "annotations": {"kustos.io/allow-import-by": "db"},
        },
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


class Db:
    """A World whose secret rotates with the fake database rotator, and that database."""

    def __init__(self, strategy: str) -> None:
        self.db = FakeDb({"app": FIRST_PASSWORD, MASTER["username"]: MASTER["password"]})
        register_rotator(FakeRotator(self.db))
        kube = FakeSecrets()
        kube.create(
            "team-a",
            _secret(
                "db-initial",
                {"username": "app", "password": FIRST_PASSWORD, "host": "db", "dbname": "app"},
            ),
        )
        kube.create("team-a", _secret("db-master", MASTER))
        config: dict[str, Any] = {"strategy": strategy, "tls": "disable"}
        if strategy == "alternating-users":
            config["masterSecretRef"] = {"name": "db-master"}
        spec = {
            "name": "prod/db",
            "valueFrom": {"secretRef": {"name": "db-initial"}},
            "rotation": {
                "rolloutTimeoutSeconds": 60,
                "custom": {"rotator": FakeRotator.name, "config": config},
            },
        }
        self.w = World(deployment("web"), spec=spec, gateway=kube)
        assert self.w.last.error is None, self.w.last.error

    def rotate(self, n: int) -> str:
        """Rotate to the end (the consumer rolls out); the new AWSCURRENT."""
        self.w.rotate(f"r{n}")
        assert self.w.last.error is None, self.w.last.error
        self.w.flush_restarts()
        self.w.workloads.roll_out("web")
        self.w.tick(3)
        assert self.w.rotations.active(self.w.arn()) is None
        return self.w.current()

    def creds(self, version_id: str) -> dict[str, Any]:
        found = self.w.store.get_version(self.w.arn(), version_id=version_id)
        assert found is not None
        return dict(self.w.secrets.open(found).as_mapping() or {})

    def accepts(self, version_id: str) -> bool:
        creds = self.creds(version_id)
        return bool(self.db.passwords.get(creds["username"]) == creds["password"])

    def roll_back(self, request: str) -> dict[str, Any]:
        self.w.body["metadata"]["annotations"]["kustos.io/rollback"] = request
        self.w.body = self.w.apply(self.w.body, frozenset({Trigger.CHANGED}))
        return dict(self.w.body["status"]["rollback"])

    def condition(self) -> dict[str, Any] | None:
        found = [
            c
            for c in self.w.body["status"].get("conditions", [])
            if c["type"] == ConditionType.ROLLBACK_REFUSED
        ]
        return found[0] if found else None

    def warnings(self, reason: Reason) -> list[str]:
        return [
            message
            for _, r, message, kind in self.w.events.emitted
            if r is reason and kind is EventType.WARNING
        ]

    def passwords(self) -> list[str]:
        return [p for p in self.db.passwords.values() if p != MASTER["password"]]


@pytest.fixture
def alternating() -> tuple[Db, str, str, str]:
    """Two rotations: v1 (app, no label), v2 (app_clone, AWSPREVIOUS), v3 (app, AWSCURRENT)."""
    d = Db("alternating-users")
    v1 = d.w.current()
    v2, v3 = d.rotate(1), d.rotate(2)
    assert [d.creds(v)["username"] for v in (v1, v2, v3)] == ["app", "app_clone", "app"]
    return d, v1, v2, v3


def test_a_version_of_awscurrents_own_user_is_refused_and_nothing_changes(
    alternating: tuple[Db, str, str, str],
) -> None:
    d, v1, v2, v3 = alternating
    before, restarts = dict(d.db.passwords), len(d.w.workloads.patches)
    answer = d.roll_back(f"{v1}#1")
    assert answer["state"] == "Refused"
    assert d.w.current() == v3 and d.w.projected_version() == v3  # AWSCURRENT stays
    assert d.db.passwords == before and d.accepts(v3) and not d.accepts(v1)  # no setSecret
    d.w.flush_restarts()
    assert len(d.w.workloads.patches) == restarts  # nothing restarted
    message = answer["message"]
    assert f"rollback to version {v1} refused" in message
    assert "user app, the user AWSCURRENT logs in as" in message
    assert f"AWSPREVIOUS (version {v2}, user app_clone" in message  # the safe alternative
    assert "--force" in message and f"kustos.io/rollback=force:{v1}" in message
    condition = d.condition()
    assert condition is not None
    assert (condition["status"], condition["reason"]) == ("True", "RollbackRefused")
    assert condition["message"] == message
    assert d.warnings(Reason.ROLLBACK_REFUSED) == [message]
    assert Reason.ROLLED_BACK not in d.w.events.reasons()
    assert isinstance(d.w.last.error, Exception)  # the controller reports it, not retried
    for password in d.passwords():  # no value anywhere
        assert password not in str(d.w.body) and password not in str(d.w.events.emitted)
    # handled once: the same request again changes nothing
    d.w.body = d.w.apply(d.w.body, frozenset({Trigger.CHANGED}))
    assert d.w.current() == v3 and d.warnings(Reason.ROLLBACK_REFUSED) == [message]


def test_forced_it_proceeds_and_warns_that_the_running_pods_fail_logins(
    alternating: tuple[Db, str, str, str],
) -> None:
    d, v1, _, v3 = alternating
    d.roll_back(f"{v1}#1")
    answer = d.roll_back(f"force:{v1}#2")
    assert answer["state"] == "Succeeded" and answer.get("forced") is True
    assert (answer["fromVersion"], answer["toVersion"]) == (v3, v1)
    assert d.w.current() == v1 and d.w.projected_version() == v1
    assert d.accepts(v1) and not d.accepts(v3)  # app has its old password: v3's pods locked out
    assert d.condition() is None  # the refusal is over
    (warning,) = d.warnings(Reason.ROLLBACK_FORCED)
    assert f"forced rollback to version {v1}" in warning
    assert "fail new logins until they are restarted" in warning
    assert Reason.ROLLED_BACK in d.w.events.reasons()
    for password in d.passwords():
        assert password not in str(d.w.body) and password not in str(d.w.events.emitted)


def test_when_awsprevious_is_the_same_user_the_other_users_version_is_named(
    alternating: tuple[Db, str, str, str],
) -> None:
    d, v1, v2, v3 = alternating
    d.roll_back(f"force:{v1}#1")  # AWSCURRENT v1 (app), AWSPREVIOUS v3 (app)
    answer = d.roll_back("previous#2")
    assert answer["state"] == "Refused" and d.w.current() == v1
    assert f"rollback to version {v3} refused" in answer["message"]
    assert f"version {v2} (user app_clone" in answer["message"]
    assert f"--version-id {v2}" in answer["message"]


def test_the_other_users_version_rolls_back_without_force(
    alternating: tuple[Db, str, str, str],
) -> None:
    d, _, v2, v3 = alternating
    d.roll_back("previous#1")
    answer = d.roll_back(f"{v3}#2")  # and forward again: v3 is the other user now
    assert answer["state"] == "Succeeded" and "forced" not in answer
    assert d.w.current() == v3 and d.accepts(v3) and d.accepts(v2)
    assert Reason.ROLLBACK_REFUSED not in d.w.events.reasons()
    assert Reason.ROLLBACK_FORCED not in d.w.events.reasons()


def test_a_new_request_after_a_refusal_clears_the_condition(
    alternating: tuple[Db, str, str, str],
) -> None:
    d, v1, v2, _ = alternating
    d.roll_back(f"{v1}#1")
    assert d.condition() is not None
    assert d.roll_back("previous#2")["state"] == "Succeeded"
    assert d.w.current() == v2 and d.condition() is None


def test_single_user_rollbacks_are_unchanged() -> None:
    d = Db("single-user")
    v1 = d.w.current()
    d.rotate(1)
    v3 = d.rotate(2)
    answer = d.roll_back(f"{v1}#1")  # the same (only) user, two rotations back
    assert answer["state"] == "Succeeded" and "forced" not in answer
    assert d.w.current() == v1 and d.accepts(v1) and not d.accepts(v3)
    assert Reason.ROLLBACK_REFUSED not in d.w.events.reasons()
    assert Reason.ROLLBACK_FORCED not in d.w.events.reasons()
    assert d.condition() is None


# -- the rule, in the rotator (no I/O) ---------------------------------------------------


def _request(strategy: str, current: tuple[str, str], target: tuple[str, str]) -> SetSecretRequest:
    config: dict[str, Any] = {"strategy": strategy, "tls": "disable"}
    if strategy == "alternating-users":
        config["masterSecretRef"] = {"name": "master"}  # unresolved: no master needed
    return SetSecretRequest(
        secret_arn="arn:kustos:secretsmanager:test:team:secret:db-abcdef",
        secret_name="db",
        namespace="team",
        token="v1",
        config=config,
        current=SecretValue.from_mapping({"username": current[0], "password": current[1]}),
        pending=SecretValue.from_mapping({"username": target[0], "password": target[1]}),
    )


@pytest.mark.parametrize(
    ("strategy", "current", "target", "locks_out"),
    [
        ("alternating-users", ("app", "p3"), ("app", "p1"), True),  # two rotations back
        ("alternating-users", ("app_clone", "p4"), ("app_clone", "p2"), True),
        ("alternating-users", ("app", "p3"), ("app_clone", "p2"), False),  # the other user
        ("alternating-users", ("app", "p3"), ("app", "p3"), False),  # same password: no-op
        ("single-user", ("app", "p3"), ("app", "p1"), False),  # inherent, documented
    ],
)
def test_rollback_lockout_rule(
    strategy: str, current: tuple[str, str], target: tuple[str, str], locks_out: bool
) -> None:
    why = FakeRotator(FakeDb()).rollback_lockout(_request(strategy, current, target))
    assert (why is not None) is locks_out
    if why is not None:
        assert f"user {current[0]}, the user AWSCURRENT logs in as" in why
        assert current[1] not in why and target[1] not in why


@pytest.mark.parametrize(
    ("request_", "parsed"),
    [
        ("previous", ("previous", False)),
        ("previous#2", ("previous", False)),
        ("", ("", False)),
        ("force:previous#cli-1", ("previous", True)),
        ("FORCE: 3f1c-abc #x", ("3f1c-abc", True)),
        ("force:#2", ("", True)),
        ("3f1c#force:", ("3f1c", False)),  # the part after # is only a nonce
    ],
)
def test_parse_request(request_: str, parsed: tuple[str, bool]) -> None:
    assert parse_request(request_) == parsed
