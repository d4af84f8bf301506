"""The harness of the rotator conformance suite: one `RotationCase` per rotator and strategy.

A case bundles a rotator, its config, the initial AWSCURRENT value, master credentials and a
`logs_in(value)` probe against the real target. `Engine` plays the engine's part: it keeps
the staging labels and runs the four steps in order. `build_case` makes a fresh case (new
database user, fresh webhook state) for a test.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from tests.db_fixture import DbServer
from tests.integration.rotators.webhook_server import SIGNING_KEY, WebhookServer

from kustos.models import SecretValue
from kustos.rotation import (
    CreateSecretRequest,
    FinishSecretRequest,
    PendingStepRequest,
    Rotator,
    SetSecretRequest,
    StepRequest,
    TestSecretRequest,
    get_rotator,
)
from kustos.rotation.rotators.mysql import native_password_hash
from kustos.rotation.rotators.postgresql import scram_sha256_verifier

ARN = "arn:kustos:secretsmanager:test:team-a:secret:app/db-AbCdEf"


@dataclass
class RotationCase:
    id: str
    rotator: Rotator
    config: dict[str, Any]
    current: SecretValue
    logs_in: Callable[[SecretValue], bool]
    master: SecretValue | None = None
    server: DbServer | None = None
    has_target: bool = True
    alternating: bool = False
    username: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def request(self, cls: type[StepRequest], engine: Engine, token: str, **overrides: Any) -> Any:
        kw: dict[str, Any] = dict(
            secret_arn=ARN,
            secret_name="app/db",
            namespace="team-a",
            token=token,
            config=self.config,
            current=engine.current,
            previous=engine.previous,
            master=self.master,
            generate={"PasswordLength": 24},
        )
        if cls is CreateSecretRequest:
            kw["pending"] = engine.pending.get(token)
        elif issubclass(cls, PendingStepRequest) and token in engine.pending:  # else TypeError
            kw["pending"] = engine.pending[token]
        kw.update(overrides)
        return cls(**kw)


@dataclass
class Engine:
    """The engine's bookkeeping for one secret: labels and pending values by token."""

    case: RotationCase
    current: SecretValue
    previous: SecretValue | None = None
    pending: dict[str, SecretValue] = field(default_factory=dict)
    history: list[SecretValue] = field(default_factory=list)

    def create(self, token: str) -> SecretValue:
        resp = self.case.rotator.create_secret(self.case.request(CreateSecretRequest, self, token))
        self.pending.setdefault(token, resp.pending)
        return resp.pending

    def step(self, cls: type[StepRequest], token: str, **overrides: Any) -> Any:
        methods: dict[type[StepRequest], str] = {
            SetSecretRequest: "set_secret",
            TestSecretRequest: "test_secret",
            FinishSecretRequest: "finish_secret",
        }
        method = methods[cls]
        return getattr(self.case.rotator, method)(self.case.request(cls, self, token, **overrides))

    def rotate(self) -> SecretValue:
        token = str(uuid.uuid4())
        new = self.create(token)
        self.step(SetSecretRequest, token)
        self.step(TestSecretRequest, token)
        self.step(FinishSecretRequest, token)
        self.history.append(self.current)
        self.previous, self.current = self.current, self.pending.pop(token)
        return new


def _db_value(engine: str, server: DbServer, user: str, password: str, dbname: str) -> SecretValue:
    return SecretValue.from_mapping(
        {
            "engine": engine,
            "host": server.host,
            "port": server.port,
            "username": user,
            "password": password,
            "dbname": dbname,
        }
    )


def _pg_case(server: DbServer, strategy: str) -> RotationCase:
    user, password = f"app_{uuid.uuid4().hex[:8]}", "initial-" + uuid.uuid4().hex
    with server.connect() as conn:
        verifier = scram_sha256_verifier(SecretValue(password))
        conn.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{verifier}'")
        conn.execute(f"CREATE TABLE {user}_t (x int)")
        conn.execute(f"INSERT INTO {user}_t VALUES (42)")  # noqa: S608 - test-made names
        conn.execute(f"GRANT SELECT ON {user}_t TO {user}")
    return _db_case("postgresql", "postgres", server, strategy, user, password, "postgres")


def _mysql_case(server: DbServer, strategy: str) -> RotationCase:
    user, password = f"app_{uuid.uuid4().hex[:8]}", "initial-" + uuid.uuid4().hex
    db = f"{user}_db"
    with server.connect() as conn, conn.cursor() as cur:
        digest = native_password_hash(SecretValue(password))
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY PASSWORD '{digest}'")
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (x int)")
        cur.execute(f"INSERT INTO {db}.t VALUES (42)")  # noqa: S608 - test-made names
        cur.execute(f"GRANT SELECT ON {db}.* TO '{user}'@'%'")
    return _db_case("mysql", "mysql", server, strategy, user, password, db)


def _db_case(
    name: str, engine: str, server: DbServer, strategy: str, user: str, password: str, dbname: str
) -> RotationCase:
    alternating = strategy == "alternating-users"
    config: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "database": dbname,
        "strategy": strategy,
        # verified TLS, the default, against the fixture's own CA
        "tls": {"mode": "verify-full", "caData": server.ca_path.read_text()},
        "connectTimeoutSeconds": 3,
    }
    master = None
    if alternating:
        config["masterSecretRef"] = {"name": "db-master"}
        master = SecretValue.from_mapping(
            {"username": server.admin_user, "password": server.admin_password}
        )
    db_kw = {"dbname": dbname} if name == "postgresql" else {"database": dbname}

    def logs_in(value: SecretValue) -> bool:
        data = value.as_mapping() or {}
        return server.can_login(data["username"], data["password"], **db_kw)

    return RotationCase(
        f"{name}-{strategy}",
        get_rotator(name),
        config,
        _db_value(engine, server, user, password, dbname),
        logs_in,
        master=master,
        server=server,
        alternating=alternating,
        username=user,
        extra={"dbname": dbname, "db_kw": db_kw},
    )


def _webhook_case(server: WebhookServer) -> RotationCase:
    initial = SecretValue('{"username": "svc", "password": "initial"}')
    server.accepted = {initial.reveal()}
    config = {
        "url": server.url,
        "signingKey": SIGNING_KEY,
        "caData": server.ca_data,
        "timeoutSeconds": 1,
    }
    return RotationCase(
        "webhook", get_rotator("webhook"), config, initial, lambda v: v.reveal() in server.accepted
    )


def _generated_case() -> RotationCase:
    initial = SecretValue.from_mapping({"username": "svc", "password": "initial"})
    return RotationCase(
        "generated",
        get_rotator("generated"),
        {"keys": ["password"]},
        initial,
        lambda v: True,
        has_target=False,
    )


DB_CASES = [
    "postgresql-single-user",
    "postgresql-alternating-users",
    "mysql-single-user",
    "mysql-alternating-users",
]
ALL_CASES = [
    "generated",
    "webhook",
    *(pytest.param(c, marks=pytest.mark.db) for c in DB_CASES),
]


def build_case(request: pytest.FixtureRequest, name: str) -> RotationCase:
    if name == "generated":
        return _generated_case()
    if name == "webhook":
        return _webhook_case(request.getfixturevalue("hook"))
    kind, _, strategy = name.partition("-")
    if kind == "postgresql":
        return _pg_case(request.getfixturevalue("pg_server"), strategy)
    return _mysql_case(request.getfixturevalue("mariadb_server"), strategy)
