"""setSecret of the database strategies when another writer of the same value gets there at
the same moment (a deposed leader's statement still waiting in the server when the new
leader resumes the rotation): the server refuses the second change of the same row, and the
step still succeeds when the database accepts AWSPENDING; any other failure stands.

The database is an in-memory fake behind the `Session` protocol (no I/O); the real race on
PostgreSQL is in tests/integration/rotators/test_database.py and, on the node with the
leader pod killed, tests/e2e/test_ha.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest

from kustos.models import SecretValue
from kustos.rotation import SetSecretRequest
from kustos.rotation.errors import CredentialsRejectedError, TargetError
from kustos.rotation.rotators._database import DatabaseRotator, Target

MASTER = {"username": "admin", "password": "master-password"}


@dataclass
class FakeDb:
    passwords: dict[str, str] = field(default_factory=dict)
    #: Runs in place of the next password change: a concurrent writer, then the refusal.
    race: Callable[[str, str], None] | None = None

    def change(self, user: str, password: str) -> None:
        if self.race is not None:
            race, self.race = self.race, None
            race(user, password)
            raise TargetError("PostgreSQL db:5432 failed (SQLSTATE XX000): tuple concurrently")
        self.passwords[user] = password


@dataclass
class _Session:
    db: FakeDb
    user: str

    def probe(self) -> None:
        pass

    def set_own_password(self, username: str, password: SecretValue) -> None:
        self.db.change(self.user, password.reveal())

    def user_exists(self, username: str) -> bool:
        return username in self.db.passwords

    def set_password(self, username: str, password: SecretValue) -> None:
        self.db.change(username, password.reveal())

    def create_clone(self, clone: str, base: str, password: SecretValue) -> None:
        self.db.change(clone, password.reveal())


class FakeRotator(DatabaseRotator):
    name: ClassVar[str] = "fake-db"
    engine: ClassVar[str] = "fake"
    default_port: ClassVar[int] = 5432
    max_username: ClassVar[int] = 63

    def __init__(self, db: FakeDb) -> None:
        self.db = db

    @contextmanager
    def connect(self, target: Target, username: str, password: SecretValue) -> Iterator[Any]:
        if self.db.passwords.get(username) != password.reveal():
            raise CredentialsRejectedError(f"fake {target} refused user {username!r}")
        yield _Session(self.db, username)


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
