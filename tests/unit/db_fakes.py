"""An in-memory database behind the database rotators' `Session` protocol, and a rotator
of the shared database strategies on it (no I/O): for unit tests of setSecret and of
rollback (the real servers are in tests/integration)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from kustos.models import SecretValue
from kustos.rotation.errors import CredentialsRejectedError, TargetError
from kustos.rotation.rotators._database import DatabaseRotator, Target

__all__ = ["FakeDb", "FakeRotator"]


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
