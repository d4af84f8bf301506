"""The database rotation strategies, shared by the PostgreSQL and MySQL/MariaDB rotators.

The secret value is a JSON object as AWS stores database credentials:
`{"engine", "host", "port", "username", "password", "dbname"}` (other keys are kept).

Strategies (config `strategy`):
- `single-user`: log in as the user with AWSCURRENT (or AWSPREVIOUS, when a crash left the
  database ahead of the store) and change the user's own password. Between setSecret and
  finishSecret, clients holding AWSCURRENT cannot log in again.
- `alternating-users`: log in with the master credentials and change the password of the
  user that is not AWSCURRENT: `app` and `app_clone` take turns, the clone being created on
  the first rotation with the base user's privileges. Clients holding AWSCURRENT keep logging
  in until the rotation after next.

Config: host, port, database (each falls back to the current value's host/port/dbname),
strategy, tls, connectTimeoutSeconds (default 5), masterSecretRef (resolved by the engine into
`req.master`; required for alternating-users). Connections are short-lived, one per step.

TLS (`tls`: a mode, or `{mode, caData}`; `caSecretRef` is resolved into `caData` by the
service before a step runs): `verify-full` (the default) encrypts and checks the server's
certificate chain, against `caData` or else the system CAs, and its name against the host;
`require` encrypts without checking who answers, and `disable` does not encrypt: both are
explicit opt-outs (the controller warns about them), since an unverified server can be an
impostor that collects the credentials a rotation logs in with.

Passwords are sent to the server only as hashes computed here (SCRAM-SHA-256 verifier,
mysql_native_password hash), so the plaintext never reaches a server log; a rotator may offer
a plugin that needs the plaintext (see `mysql`), only over `verify-full`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from kustos.errors import InvalidParameterError, InvalidRequestError
from kustos.models import SecretValue
from kustos.rotation.errors import (
    CredentialsRejectedError,
    TargetError,
    TargetUserMissingError,
)
from kustos.rotation.passwords import generate_password
from kustos.rotation.rotator import (
    CreateSecretRequest,
    CreateSecretResponse,
    FinishSecretRequest,
    FinishSecretResponse,
    RetireSecretRequest,
    RetireSecretResponse,
    SetSecretRequest,
    SetSecretResponse,
    StepRequest,
    TestSecretRequest,
    TestSecretResponse,
)
from kustos.rotation.rotators._config import check_keys, get_timeout, get_typed

SINGLE, ALTERNATING = "single-user", "alternating-users"
CLONE_SUFFIX = "_clone"
TLS_MODES = ("disable", "require", "verify-full")
#: Without `tls` in the config: verify the server (see the module docstring).
DEFAULT_TLS = "verify-full"
COMMON_KEYS = {
    "host",
    "port",
    "database",
    "strategy",
    "tls",
    "connectTimeoutSeconds",
    "masterSecretRef",
}


@dataclass(frozen=True)
class Settings:
    strategy: str
    host: str | None
    port: int | None
    database: str | None
    tls_mode: str
    ca_data: str | None
    connect_timeout: float
    extra: Mapping[str, Any]


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    database: str | None
    settings: Settings

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Credentials:
    """A username and its password, parsed from a secret value (the repr shows no secret)."""

    username: str
    password: SecretValue
    fields: SecretValue  # the whole JSON value, for host/port/dbname fallbacks

    def field(self, key: str) -> Any:
        return (self.fields.as_mapping() or {}).get(key)


class Session(Protocol):
    """One logged-in connection; errors are already sanitized Kustos errors."""

    def probe(self) -> None: ...
    def set_own_password(self, username: str, password: SecretValue) -> None: ...
    def user_exists(self, username: str) -> bool: ...
    def set_password(self, username: str, password: SecretValue) -> None: ...
    def create_clone(self, clone: str, base: str, password: SecretValue) -> None: ...


def parse_credentials(value: SecretValue | None, what: str, req: StepRequest) -> Credentials:
    data = value.as_mapping() if value is not None else None
    if (
        data is None
        or not isinstance(data.get("username"), str)
        or not data["username"]
        or not isinstance(data.get("password"), str)
    ):
        raise InvalidRequestError(
            f"{req.step} for {req.secret_arn}: the {what} value must be a JSON object with "
            "string keys username and password"
        )
    assert value is not None
    return Credentials(data["username"], SecretValue(data["password"]), value)


class DatabaseRotator(ABC):
    name: ClassVar[str]
    engine: ClassVar[str]
    default_port: ClassVar[int]
    max_username: ClassVar[int]
    extra_keys: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def connect(
        self, target: Target, username: str, password: SecretValue
    ) -> AbstractContextManager[Session]:
        """A logged-in session; raises CredentialsRejectedError / TargetUnreachableError."""

    def validate(self, config: Mapping[str, Any]) -> None:
        self.settings(config)

    def settings(self, config: Mapping[str, Any]) -> Settings:
        n = self.name
        check_keys(n, config, COMMON_KEYS | self.extra_keys)
        strategy = get_typed(n, config, "strategy", str, SINGLE)
        if strategy not in (SINGLE, ALTERNATING):
            raise InvalidParameterError(f"{n} rotator: strategy must be {SINGLE} or {ALTERNATING}")
        if strategy == ALTERNATING and "masterSecretRef" not in config:
            raise InvalidParameterError(f"{n} rotator: {ALTERNATING} needs masterSecretRef")
        port = config.get("port")
        if port is not None and (
            isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536
        ):
            raise InvalidParameterError(f"{n} rotator: port must be an integer in 1..65535")
        tls = config.get("tls", DEFAULT_TLS)
        tls_map: Mapping[str, Any] = {"mode": tls} if isinstance(tls, str) else tls
        if not isinstance(tls_map, Mapping):
            raise InvalidParameterError(f"{n} rotator: tls must be a mode or {{mode, caData}}")
        check_keys(n, tls_map, {"mode", "caData", "caSecretRef"})
        mode, ca = tls_map.get("mode", DEFAULT_TLS), tls_map.get("caData")

        if mode not in TLS_MODES:
            raise InvalidParameterError(f"{n} rotator: tls mode must be one of {TLS_MODES}")
        if ca is not None and (not isinstance(ca, str) or "BEGIN CERTIFICATE" not in ca):
            raise InvalidParameterError(f"{n} rotator: tls caData must be PEM certificates")
        host = config.get("host")
        database = config.get("database")
        for key, val in (("host", host), ("database", database)):
            if val is not None and (not isinstance(val, str) or not val):
                raise InvalidParameterError(f"{n} rotator: {key} must be a non-empty string")
        timeout = get_timeout(n, config, "connectTimeoutSeconds", 5.0)
        return Settings(strategy, host, port, database, mode, ca, timeout, config)

    def target(self, s: Settings, creds: Credentials, req: StepRequest) -> Target:
        host = s.host or creds.field("host")
        port = s.port or creds.field("port") or self.default_port
        database = s.database or creds.field("dbname")
        if not isinstance(host, str) or not host:
            raise InvalidRequestError(f"{req.step}: no database host in config or secret value")
        try:
            return Target(host, int(port), database if isinstance(database, str) else None, s)
        except (TypeError, ValueError):
            raise InvalidRequestError(
                f"{req.step}: the secret value's port is not a number"
            ) from None

    # ------------------------------------------------------------------ the four steps
    def create_secret(self, req: CreateSecretRequest) -> CreateSecretResponse:
        s = self.settings(req.config)
        if req.pending is not None:
            parse_credentials(req.pending, "AWSPENDING", req)
            return CreateSecretResponse(pending=req.pending, message="pending value exists")
        current = parse_credentials(req.current, "AWSCURRENT", req)
        username = current.username
        if s.strategy == ALTERNATING:
            username = (
                username[: -len(CLONE_SUFFIX)]
                if username.endswith(CLONE_SUFFIX)
                else username + CLONE_SUFFIX
            )
        if len(username) > self.max_username:
            raise InvalidRequestError(
                f"createSecret: user name {username!r} is longer than {self.max_username}"
            )
        target = self.target(s, current, req)
        value = dict(current.fields.as_mapping() or {})
        value.update(
            engine=value.get("engine", self.engine),
            host=target.host,
            port=target.port,
            username=username,
            password=generate_password(req.password_params()),
        )
        if target.database:
            value["dbname"] = target.database
        return CreateSecretResponse(
            pending=SecretValue.from_mapping(value), message=f"new password for user {username}"
        )

    def set_secret(self, req: SetSecretRequest) -> SetSecretResponse:
        s = self.settings(req.config)
        pending = parse_credentials(req.pending, "AWSPENDING", req)
        target = self.target(s, pending, req)
        if self._logs_in(target, pending):
            return SetSecretResponse(changed=False, message="database already accepts it")
        try:
            if s.strategy == SINGLE:
                return self._set_single(req, target, pending)
            return self._set_through_master(req, target, pending)
        except TargetError:
            # Another writer of this very value changed the same user at the same moment:
            # a deposed leader's statement that was still waiting in the server, or a retry
            # that raced. The server refuses the second change of the same catalog row
            # (PostgreSQL: "tuple concurrently updated"; CREATE ROLE: the role exists). The
            # step's promise is that the database accepts AWSPENDING: if it now does, the
            # step is done; if not, the failure stands (and is retried).
            if self._logs_in(target, pending):
                return SetSecretResponse(
                    changed=False,
                    message="database already accepts it (changed concurrently)",
                )
            raise

    def _set_through_master(
        self, req: StepRequest, target: Target, pending: Credentials
    ) -> SetSecretResponse:
        master = parse_credentials(req.master, "master", req)
        user = pending.username
        with self.connect(target, master.username, master.password) as db:
            if db.user_exists(user):
                db.set_password(user, pending.password)
                return SetSecretResponse(message=f"changed the password of user {user}")
            base = user[: -len(CLONE_SUFFIX)] if user.endswith(CLONE_SUFFIX) else user
            if base == user or not db.user_exists(base):
                raise TargetUserMissingError(
                    f"setSecret: database user {base!r} does not exist on {target}"
                )
            db.create_clone(user, base, pending.password)
            return SetSecretResponse(message=f"created user {user} as a clone of {base}")

    def _set_single(
        self, req: StepRequest, target: Target, pending: Credentials
    ) -> SetSecretResponse:
        for label, value in (("AWSCURRENT", req.current), ("AWSPREVIOUS", req.previous)):
            if value is None:
                continue
            creds = parse_credentials(value, label, req)
            if creds.username != pending.username:
                continue
            try:
                with self.connect(target, creds.username, creds.password) as db:
                    db.set_own_password(creds.username, pending.password)
            except CredentialsRejectedError:
                continue
            return SetSecretResponse(
                message=f"user {creds.username} changed its password (logged in with {label})"
            )
        raise CredentialsRejectedError(
            f"setSecret: neither AWSCURRENT nor AWSPREVIOUS credentials of user "
            f"{pending.username!r} can log in to {target} (wrong password, or no such user)"
        )

    def _logs_in(self, target: Target, creds: Credentials) -> bool:
        try:
            with self.connect(target, creds.username, creds.password) as db:
                db.probe()
        except CredentialsRejectedError:
            return False
        return True

    def test_secret(self, req: TestSecretRequest) -> TestSecretResponse:
        s = self.settings(req.config)
        pending = parse_credentials(req.pending, "AWSPENDING", req)
        target = self.target(s, pending, req)
        try:
            with self.connect(target, pending.username, pending.password) as db:
                db.probe()
        except CredentialsRejectedError as exc:
            raise CredentialsRejectedError(
                f"testSecret: the AWSPENDING credentials were refused: {exc.message}"
            ) from None
        return TestSecretResponse(message=f"user {pending.username} logged in to {target}")

    def finish_secret(self, req: FinishSecretRequest) -> FinishSecretResponse:
        self.settings(req.config)
        return FinishSecretResponse()

    def rollback_lockout(self, req: SetSecretRequest) -> str | None:
        """alternating-users: a version of AWSCURRENT's own user (two rotations back) can be
        accepted again only by setting that user's password to the old one, which the
        clients holding AWSCURRENT then fail to log in with. The other user's versions are
        safe, and so is a version whose password is AWSCURRENT's (setSecret changes
        nothing). single-user promises nothing: every rollback sets the one user's password."""
        s = self.settings(req.config)
        if s.strategy != ALTERNATING or req.current is None:
            return None
        current = parse_credentials(req.current, "AWSCURRENT", req)
        target = parse_credentials(req.pending, "rollback target", req)
        if target.username != current.username or target.password == current.password:
            return None
        return (
            f"it is a version of user {current.username}, the user AWSCURRENT logs in as: "
            f"accepting it again sets {current.username}'s old password, so the pods running "
            "on AWSCURRENT fail new logins until they are restarted"
        )

    def retire_secret(self, req: RetireSecretRequest) -> RetireSecretResponse:
        """alternating-users: log in as master and give the previous user (the one that is
        not AWSCURRENT's) a fresh random password nobody keeps, so AWSPREVIOUS stops working.
        The next rotation sets that user's password again through the master; a rollback
        makes it accept AWSPREVIOUS again with setSecret. single-user: nothing outlives
        setSecret, nothing to retire."""
        s = self.settings(req.config)
        if s.strategy != ALTERNATING or req.previous is None:
            return RetireSecretResponse(message="nothing to retire")
        current = parse_credentials(req.current, "AWSCURRENT", req)
        previous = parse_credentials(req.previous, "AWSPREVIOUS", req)
        if previous.username == current.username:
            return RetireSecretResponse(message="AWSPREVIOUS is the same user as AWSCURRENT")
        master = parse_credentials(req.master, "master", req)
        target = self.target(s, previous, req)
        with self.connect(target, master.username, master.password) as db:
            if not db.user_exists(previous.username):
                return RetireSecretResponse(message=f"user {previous.username} is gone")
            db.set_password(
                previous.username, SecretValue(generate_password(req.password_params()))
            )
        return RetireSecretResponse(
            message=f"retired the previous password of user {previous.username}"
        )
