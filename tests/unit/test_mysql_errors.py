"""How the mysql rotator reads the server's errors: by the driver's error number, not by words.

The server is a fake connection; its errors are built by PyMySQL's own `raise_mysql_exception`
from an ERR packet, so they are the exceptions the driver raises, number and class alike.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import pymysql
import pytest
from pymysql.err import raise_mysql_exception

from kustos.models import SecretValue
from kustos.rotation.errors import TargetError, TargetUnreachableError
from kustos.rotation.rotators._database import Settings, Target
from kustos.rotation.rotators.mysql import MySQLRotator

PASSWORD = SecretValue("master-password-1")
TARGET = Target(
    "db.example",
    3306,
    None,
    Settings("alternating-users", None, None, None, "disable", None, 5.0, {}),
)


def server_error(number: int, text: str) -> pymysql.MySQLError:
    """The exception PyMySQL raises for an ERR packet carrying `number` and `text`."""
    packet = b"\xff" + struct.pack("<h", number) + b"#42000" + text.encode()
    try:
        raise_mysql_exception(packet)
    except pymysql.MySQLError as exc:
        return exc
    raise AssertionError("raise_mysql_exception did not raise")


class _Cursor:
    def __init__(self, answer: Callable[[str], list[tuple[Any, ...]]]) -> None:
        self._answer = answer
        self._rows: list[tuple[Any, ...]] = []

    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, query: str, args: tuple[Any, ...] | None = None) -> None:
        self._rows = self._answer(query)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows


class FakeServer:
    """A MariaDB that answers SHOW GRANTS with `grants` (rows, or an error to raise)."""

    def __init__(self, grants: list[tuple[Any, ...]] | pymysql.MySQLError) -> None:
        self.grants = grants

    def _answer(self, query: str) -> list[tuple[Any, ...]]:
        if query == "SELECT VERSION()":
            return [("11.4.2-MariaDB",)]
        if query.startswith("SHOW GRANTS"):
            if isinstance(self.grants, pymysql.MySQLError):
                raise self.grants
            return self.grants
        raise AssertionError(f"unexpected query {query!r}")

    def cursor(self) -> _Cursor:
        return _Cursor(self._answer)

    def close(self) -> None:
        pass


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Callable[[FakeServer], None]:
    """Makes `pymysql.connect` hand out the given fake server."""

    def use(server: FakeServer) -> None:
        monkeypatch.setattr(pymysql, "connect", lambda **_kwargs: server)

    return use


def test_no_such_grant_is_a_missing_user(serve: Callable[[FakeServer], None]) -> None:
    serve(FakeServer(server_error(1141, "There is no such grant defined for user 'app'")))
    with MySQLRotator().connect(TARGET, "master", PASSWORD) as session:
        assert session.user_exists("app") is False


def test_grants_mean_the_user_exists(serve: Callable[[FakeServer], None]) -> None:
    serve(FakeServer([("GRANT USAGE ON *.* TO `app`@`%`",)]))
    with MySQLRotator().connect(TARGET, "master", PASSWORD) as session:
        assert session.user_exists("app") is True


def test_target_error_carries_the_servers_error_number(
    serve: Callable[[FakeServer], None],
) -> None:
    serve(FakeServer(server_error(1227, "Access denied; you need the CREATE USER privilege")))
    with (
        MySQLRotator().connect(TARGET, "master", PASSWORD) as session,
        pytest.raises(TargetError, match=r"\(error 1227\)") as info,
    ):
        session.user_exists("app")
    assert info.value.driver_code == 1227


def test_words_that_look_like_the_number_do_not_count(
    serve: Callable[[FakeServer], None],
) -> None:
    # A server message may quote anything it was given (a user name, a host): only the
    # number decides. The old check searched the message for "error 1141)".
    serve(FakeServer(server_error(1044, "Access denied for user 'x (error 1141)'@'%'")))
    with (
        MySQLRotator().connect(TARGET, "master", PASSWORD) as session,
        pytest.raises(TargetError) as info,
    ):
        session.user_exists("app")
    assert info.value.driver_code == 1044


def test_a_lost_connection_is_unreachable_not_missing(
    serve: Callable[[FakeServer], None],
) -> None:
    serve(FakeServer(server_error(2013, "Lost connection to server during query")))
    with (
        MySQLRotator().connect(TARGET, "master", PASSWORD) as session,
        pytest.raises(TargetUnreachableError),
    ):
        session.user_exists("app")


def test_driver_code_defaults_to_none() -> None:
    assert TargetError("the webhook answered garbage").driver_code is None
