"""Database rotators against real PostgreSQL and MariaDB: the failure modes and promises."""

from __future__ import annotations

import json
import uuid
from typing import Any, cast

import pytest
from tests.integration.rotators.rotation_harness import Engine, RotationCase, build_case

from kustos.errors import ClientError, ServerError
from kustos.models import SecretValue
from kustos.rotation import SetSecretRequest, TestSecretRequest
from kustos.rotation.errors import (
    CredentialsRejectedError,
    TargetUnreachableError,
    TargetUserMissingError,
)
from kustos.rotation.rotators.mysql import ed25519_password_key

pytestmark = pytest.mark.db


def _passwords(*values: SecretValue | None) -> list[str]:
    return [str((v.as_mapping() or {})["password"]) for v in values if v is not None]


def _select(case: RotationCase, value: SecretValue) -> Any:
    data = value.as_mapping() or {}
    assert case.server is not None
    conn = case.server.connect(data["username"], data["password"], **case.extra["db_kw"])
    table = f"{case.username}_t" if case.server.kind == "postgresql" else "t"
    with conn, conn.cursor() as cur:
        cur.execute(f"SELECT x FROM {table}")  # noqa: S608 - test-made names
        return cur.fetchone()[0]


def test_rotated_users_keep_their_privileges(db_case: RotationCase) -> None:
    engine = Engine(db_case, db_case.current)
    for _ in range(2):  # the second rotation returns to the base user
        engine.rotate()
        assert _select(db_case, engine.current) == 42


def test_a_live_connection_survives_rotations(db_case: RotationCase) -> None:
    engine = Engine(db_case, db_case.current)
    data = db_case.current.as_mapping() or {}
    assert db_case.server is not None
    conn = db_case.server.connect(data["username"], data["password"], **db_case.extra["db_kw"])
    try:
        for _ in range(3):
            engine.rotate()
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                assert cur.fetchone()[0] == 1
    finally:
        conn.close()


def test_no_password_reaches_the_server_log(db_case: RotationCase) -> None:
    engine = Engine(db_case, db_case.current)
    for _ in range(3):
        engine.rotate()
    assert db_case.server is not None
    log = db_case.server.log_text()
    assert db_case.username in log  # the log is on and records our statements
    for password in _passwords(db_case.current, *engine.history):
        assert password not in log


def test_unreachable_database_gives_a_clear_sanitized_error(db_case: RotationCase) -> None:
    engine = Engine(db_case, db_case.current)
    token = str(uuid.uuid4())
    engine.create(token)
    assert db_case.server is not None
    with db_case.server.stopped():
        for cls in (SetSecretRequest, TestSecretRequest):
            with pytest.raises(TargetUnreachableError) as info:
                engine.step(cls, token)
            assert isinstance(info.value, ServerError)
            assert info.value.retryable
            assert f"{db_case.server.host}:{db_case.server.port}" in info.value.message
            for secret in _passwords(engine.pending[token], engine.current, db_case.master):
                assert secret not in str(info.value)
            assert info.value.__cause__ is None
            assert info.value.__suppress_context__
    engine.step(SetSecretRequest, token)  # back up: the step resumes
    engine.step(TestSecretRequest, token)


def test_wrong_current_password_single_user(single_case: RotationCase) -> None:
    data = dict(single_case.current.as_mapping() or {}, password="not-the-password")
    engine = Engine(single_case, SecretValue(json.dumps(data)))
    token = str(uuid.uuid4())
    engine.create(token)
    with pytest.raises(CredentialsRejectedError, match="neither AWSCURRENT nor AWSPREVIOUS"):
        engine.step(SetSecretRequest, token)


def test_previous_credentials_finish_an_interrupted_single_user_rotation(
    single_case: RotationCase,
) -> None:
    engine = Engine(single_case, single_case.current)
    engine.rotate()
    # The store lost the last finish: AWSCURRENT points at a password the DB no longer has.
    stale = Engine(
        single_case,
        SecretValue(json.dumps(dict(single_case.current.as_mapping() or {}, password="lost"))),
        previous=engine.current,
    )
    token = str(uuid.uuid4())
    new = stale.create(token)
    stale.step(SetSecretRequest, token)
    assert single_case.logs_in(new)


def test_wrong_master_credentials(alternating_case: RotationCase) -> None:
    alternating_case.master = SecretValue.from_mapping(
        {"username": "kustos_admin", "password": "wrong"}
    )
    engine = Engine(alternating_case, alternating_case.current)
    token = str(uuid.uuid4())
    engine.create(token)
    with pytest.raises(CredentialsRejectedError, match="kustos_admin") as info:
        engine.step(SetSecretRequest, token)
    assert isinstance(info.value, ClientError)
    assert info.value.retryable
    assert "wrong" not in info.value.message


def test_missing_master_value(alternating_case: RotationCase) -> None:
    alternating_case.master = None
    engine = Engine(alternating_case, alternating_case.current)
    token = str(uuid.uuid4())
    engine.create(token)
    with pytest.raises(ClientError, match="master"):
        engine.step(SetSecretRequest, token)


def test_user_deleted_in_the_database(db_case: RotationCase) -> None:
    assert db_case.server is not None
    with db_case.server.connect() as conn, conn.cursor() as cur:
        if db_case.server.kind == "postgresql":
            cur.execute(f"DROP OWNED BY {db_case.username}")
            cur.execute(f"DROP ROLE {db_case.username}")
        else:
            cur.execute(f"DROP USER '{db_case.username}'@'%'")
    engine = Engine(db_case, db_case.current)
    token = str(uuid.uuid4())
    engine.create(token)
    expected = TargetUserMissingError if db_case.alternating else CredentialsRejectedError
    with pytest.raises(expected, match=db_case.username):
        engine.step(SetSecretRequest, token)


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_tls_verify_full_with_the_server_ca(request: pytest.FixtureRequest, kind: str) -> None:
    case = build_case(request, f"{kind}-single-user")
    assert case.server is not None
    ca = case.server.ca_path.read_text()
    case.config = {**case.config, "tls": {"mode": "verify-full", "caData": ca}}
    engine = Engine(case, case.current)
    engine.rotate()
    assert case.logs_in(engine.current)
    # A CA that did not sign the server certificate is refused before any password is sent.
    other = (request.getfixturevalue("webhook_server")).ca_data
    case.config = {**case.config, "tls": {"mode": "verify-full", "caData": other}}
    token = str(uuid.uuid4())
    engine.create(token)
    with pytest.raises(TargetUnreachableError, match="certificate"):
        engine.step(SetSecretRequest, token)


@pytest.mark.parametrize("kind", ["postgresql", "mysql"])
def test_tls_verifies_the_server_by_default(request: pytest.FixtureRequest, kind: str) -> None:
    """Without `tls`, the server's certificate must chain to a trusted CA: the fixtures' own
    CA is not one of the system's, so nothing is sent; `require` (the opt-out) connects."""
    case = build_case(request, f"{kind}-single-user")
    case.config = {k: v for k, v in case.config.items() if k != "tls"}
    engine = Engine(case, case.current)
    token = str(uuid.uuid4())
    engine.create(token)
    with pytest.raises(TargetUnreachableError, match="certificate"):
        engine.step(SetSecretRequest, token)
    case.config = {**case.config, "tls": "require"}
    engine.rotate()
    assert case.logs_in(engine.current)


@pytest.mark.parametrize("strategy", ["single-user", "alternating-users"])
def test_mariadb_ed25519_plugin_without_plaintext(
    request: pytest.FixtureRequest, strategy: str
) -> None:
    """authPlugin ed25519: the rotated accounts use MariaDB's stronger plugin, the key is
    computed here (no password in the general log), and the new password logs in."""
    case = build_case(request, f"mysql-{strategy}")
    assert case.server is not None
    with case.server.connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.plugins "
            "WHERE plugin_name = 'ed25519' AND plugin_status = 'ACTIVE'"
        )
        if not cur.fetchone()[0]:
            cur.execute("INSTALL SONAME 'auth_ed25519'")
        if strategy == "single-user":  # an account may change its password, not its plugin
            initial = (case.current.as_mapping() or {})["password"]
            cur.execute(
                "ALTER USER %s@%s IDENTIFIED VIA ed25519 USING %s",
                (case.username, "%", ed25519_password_key(SecretValue(initial))),
            )
    assert case.logs_in(case.current)  # the key computed here is the server's own
    case.config = {**case.config, "authPlugin": "ed25519"}
    engine = Engine(case, case.current)
    for _ in range(2):
        engine.rotate()
        assert case.logs_in(engine.current)
        assert _select(case, engine.current) == 42
        user = (engine.current.as_mapping() or {})["username"]
        with case.server.connect() as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT JSON_VALUE(priv, '$.plugin') FROM mysql.global_priv WHERE user = %s",
                (user,),
            )
            assert cur.fetchone()[0] == "ed25519"
    assert not case.logs_in(
        SecretValue.from_mapping({**(engine.current.as_mapping() or {}), "password": "wrong"})
    )
    log = case.server.log_text()
    for password in _passwords(case.current, *engine.history):
        assert password not in log


def test_auth_plugin_is_validated(request: pytest.FixtureRequest) -> None:
    case = build_case(request, "mysql-single-user")
    with pytest.raises(ClientError, match="authPlugin"):
        case.rotator.validate({**case.config, "authPlugin": "sha256_password"})


def test_retire_secret_stops_only_the_previous_credentials(db_case: RotationCase) -> None:
    """awaitRollout's last act: the previous user's password is replaced by one nobody
    keeps; AWSCURRENT keeps working; setSecret with the retired value (a rollback) makes
    the database accept it again. single-user has nothing left to retire."""
    from kustos.rotation.rotator import RetireSecretRequest, RetiringRotator

    engine = Engine(db_case, db_case.current)
    engine.rotate()
    assert engine.previous is not None
    assert db_case.logs_in(engine.previous) is db_case.alternating  # alternating: still works
    rotator = cast(RetiringRotator, db_case.rotator)  # the database rotators retire
    retired = rotator.retire_secret(db_case.request(RetireSecretRequest, engine, "retire-1"))
    assert not db_case.logs_in(engine.previous)
    assert db_case.logs_in(engine.current)
    if not db_case.alternating:
        assert retired.message == "nothing to retire"
        return
    assert "retired" in retired.message
    again = rotator.retire_secret(db_case.request(RetireSecretRequest, engine, "retire-2"))
    assert "retired" in again.message  # idempotent: no error on a second call
    # a rollback makes the database accept the previous value again, then tests it
    db_case.rotator.set_secret(
        db_case.request(SetSecretRequest, engine, "rollback", pending=engine.previous)
    )
    db_case.rotator.test_secret(
        db_case.request(TestSecretRequest, engine, "rollback", pending=engine.previous)
    )
    assert db_case.logs_in(engine.previous) and db_case.logs_in(engine.current)


@pytest.mark.parametrize("strategy", ["single-user", "alternating-users"])
def test_two_set_secrets_of_one_token_racing_on_postgresql_both_succeed(
    pg_server: Any, strategy: str
) -> None:
    """What a new leader meets when the deposed one's statement still waits in the server:
    two setSecret calls for one token wait on a transaction that holds the role (single-user:
    it altered the user; alternating-users, first rotation: it created the clone). Released,
    one change lands; PostgreSQL refuses the other ("tuple concurrently updated", or the role
    exists), and that setSecret succeeds too, since the database accepts AWSPENDING."""
    import threading
    import time

    from tests.integration.rotators.rotation_harness import _pg_case

    case = _pg_case(pg_server, strategy)
    engine = Engine(case, case.current)
    token = str(uuid.uuid4())
    pending = engine.create(token)
    user = str((pending.as_mapping() or {})["username"])
    holder = pg_server.connect()
    holder.autocommit = False  # the transaction stays open until released below
    results: list[Any] = []
    try:
        if strategy == "single-user":
            holder.execute(f'ALTER ROLE "{user}" CONNECTION LIMIT -1')
        else:
            holder.execute(f'CREATE ROLE "{user}"')

        def set_secret() -> None:
            try:
                results.append(engine.step(SetSecretRequest, token))
            except Exception as exc:  # the assertion below shows it
                results.append(exc)

        threads = [threading.Thread(target=set_secret) for _ in range(2)]
        for thread in threads:
            thread.start()
            deadline = time.monotonic() + 30
            waiting = 0
            while waiting < threads.index(thread) + 1:  # one at a time: a known order
                assert time.monotonic() < deadline, "setSecret never waited on the lock"
                with pg_server.connect() as admin:
                    row = admin.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
                        "'kustos-rotator' AND wait_event_type = 'Lock'"
                    ).fetchone()
                waiting = row[0] if row else 0
                time.sleep(0.05)
    finally:
        holder.rollback()
        holder.close()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 2 and all(not isinstance(r, Exception) for r in results), results
    messages = [r.message for r in results]
    assert "database already accepts it (changed concurrently)" in messages, messages
    assert sum(r.changed for r in results) == 1, messages  # one of them changed it
    assert case.logs_in(pending)
    engine.step(TestSecretRequest, token)
