"""setSecret of the database strategies when another writer of the same value gets there at
the same moment (a deposed leader's statement still waiting in the server when the new
leader resumes the rotation): the server refuses the second change of the same row, and the
step still succeeds when the database accepts AWSPENDING; any other failure stands.

The database is an in-memory fake behind the `Session` protocol (no I/O); the real race on
PostgreSQL is in tests/integration/rotators/test_database.py and, on the node with the
leader pod killed, tests/e2e/test_ha.py."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.db_fakes import FakeDb, FakeRotator

from kustos.models import SecretValue
from kustos.rotation import SetSecretRequest
from kustos.rotation.errors import TargetError

MASTER = {"username": "admin", "password": "master-password"}


def _value(user: str, password: str) -> SecretValue:
    return SecretValue.from_mapping(
        {"username": user, "password": password, "host": "db", "port": 5432, "dbname": "app"}
    )


def _request(strategy: str, current: tuple[str, str], pending: tuple[str, str]) -> SetSecretRequest:
    config: dict[str, Any] = {"strategy": strategy, "tls": "disable"}
    if strategy == "alternating-users":
        config["masterSecretRef"] = {"name": "master"}
    return SetSecretRequest(
        secret_arn="arn:kustos:secretsmanager:test:team:secret:db-abcdef",
        secret_name="db",
        namespace="team",
        token="token-1",
        config=config,
        current=_value(*current),
        master=SecretValue.from_mapping(MASTER),
        pending=_value(*pending),
    )


CASES = [
    # strategy, the database before, AWSCURRENT, AWSPENDING
    ("single-user", {"app": "old"}, ("app", "old"), ("app", "new")),
    ("alternating-users", {"app": "old", "app_clone": "x"}, ("app", "old"), ("app_clone", "new")),
    ("alternating-users", {"app": "old"}, ("app", "old"), ("app_clone", "new")),  # the clone
]


@pytest.mark.parametrize(("strategy", "before", "current", "pending"), CASES)
def test_a_concurrent_change_to_the_pending_value_completes_the_step(
    strategy: str, before: dict[str, str], current: tuple[str, str], pending: tuple[str, str]
) -> None:
    db = FakeDb({**before, MASTER["username"]: MASTER["password"]})
    db.race = db.passwords.__setitem__  # the other writer sets the same value, then we fail
    answer = FakeRotator(db).set_secret(_request(strategy, current, pending))
    assert db.passwords[pending[0]] == pending[1]
    assert answer.changed is False
    assert answer.message == "database already accepts it (changed concurrently)"


@pytest.mark.parametrize(("strategy", "before", "current", "pending"), CASES)
def test_a_failed_change_that_left_another_password_still_fails(
    strategy: str, before: dict[str, str], current: tuple[str, str], pending: tuple[str, str]
) -> None:
    db = FakeDb({**before, MASTER["username"]: MASTER["password"]})
    db.race = lambda user, _password: db.passwords.__setitem__(user, "someone-else's")
    with pytest.raises(TargetError, match="SQLSTATE XX000"):
        FakeRotator(db).set_secret(_request(strategy, current, pending))
    assert db.passwords[pending[0]] != pending[1]


def test_without_a_race_the_step_changes_the_password() -> None:
    db = FakeDb({"app": "old"})
    answer = FakeRotator(db).set_secret(_request("single-user", ("app", "old"), ("app", "new")))
    assert (answer.changed, db.passwords["app"]) == (True, "new")
