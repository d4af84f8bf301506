"""`postgresql`: rotation of PostgreSQL login roles (see `_database` for strategies, config).

Passwords reach the server only as SCRAM-SHA-256 verifiers computed here
(`ALTER ROLE ... PASSWORD 'SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>'`, RFC 5802 /
RFC 7677), so `log_statement=all` logs a verifier, never the password. A verifier is as
good as a password hash; the server stores exactly this string.

Alternating users: the clone is created with `CREATE ROLE <base>_clone LOGIN IN ROLE <base>`,
i.e. it is a member of the base role and inherits its privileges, like AWS's template. Objects
that either login creates belong to that login: let a shared group role own schema objects.
The master needs CREATEROLE and ADMIN on the base role (or superuser).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import psycopg
from psycopg import sql

from kustos.errors import InvalidRequestError
from kustos.models import SecretValue
from kustos.rotation.errors import (
    CredentialsRejectedError,
    TargetError,
    TargetUnreachableError,
    sanitize,
)
from kustos.rotation.rotators._database import DatabaseRotator, Target

__all__ = ["PostgresRotator", "scram_sha256_verifier"]

SCRAM_ITERATIONS = 4096
#: How a refused login reads. The one place this module goes by message text: libpq keeps
#: no SQLSTATE for a connection that failed (psycopg's error then has `sqlstate` None), so
#: the server's words are all there is. Statements on an open connection go by SQLSTATE.
_AUTH_MARKERS = (
    "password authentication failed",
    "no pg_hba.conf entry",
    "does not exist",
    "authentication failed",
    "permission denied",
)


def scram_sha256_verifier(
    password: SecretValue, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS
) -> str:
    """The verifier PostgreSQL stores for `password` (ASCII passwords: SASLprep is identity)."""
    raw = password.reveal()
    if not raw.isascii():
        raise InvalidRequestError("postgresql rotator: passwords must be ASCII")
    salt = salt if salt is not None else secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", raw.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}$"
        f"{b64(stored_key).decode()}:{b64(server_key).decode()}"
    )


class _PgSession:
    def __init__(
        self, conn: psycopg.Connection[Any], target: Target, password: SecretValue
    ) -> None:
        self.conn, self.target, self.password = conn, target, password

    def _run(
        self,
        query: sql.Composed | str,
        params: tuple[Any, ...] = (),
        *,
        new: SecretValue | None = None,
    ) -> list[tuple[Any, ...]]:
        try:
            with self.conn.cursor() as cur:
                cur.execute(query, params or None)
                return cur.fetchall() if cur.description else []
        except psycopg.Error as exc:
            detail = sanitize(str(exc), [self.password, new])
            sqlstate = getattr(exc, "sqlstate", None)
            code = sqlstate or "unknown"
            if isinstance(exc, psycopg.OperationalError) and code.startswith("08"):
                raise TargetUnreachableError(f"PostgreSQL {self.target}: {detail}") from None
            raise TargetError(
                f"PostgreSQL {self.target} failed (SQLSTATE {code}): {detail}", driver_code=sqlstate
            ) from None

    def probe(self) -> None:
        self._run("SELECT 1")

    def set_own_password(self, username: str, password: SecretValue) -> None:
        verifier = scram_sha256_verifier(password)
        self._run(
            sql.SQL("ALTER ROLE CURRENT_USER PASSWORD {}").format(sql.Literal(verifier)),
            new=password,
        )

    def user_exists(self, username: str) -> bool:
        return bool(self._run("SELECT 1 FROM pg_roles WHERE rolname = %s", (username,)))

    def set_password(self, username: str, password: SecretValue) -> None:
        verifier = scram_sha256_verifier(password)
        self._run(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(username), sql.Literal(verifier)
            ),
            new=password,
        )

    def create_clone(self, clone: str, base: str, password: SecretValue) -> None:
        verifier = scram_sha256_verifier(password)
        self._run(
            sql.SQL("CREATE ROLE {} LOGIN IN ROLE {} PASSWORD {}").format(
                sql.Identifier(clone), sql.Identifier(base), sql.Literal(verifier)
            ),
            new=password,
        )


class PostgresRotator(DatabaseRotator):
    name: ClassVar[str] = "postgresql"
    engine: ClassVar[str] = "postgres"
    default_port: ClassVar[int] = 5432
    max_username: ClassVar[int] = 63

    @contextmanager
    def connect(self, target: Target, username: str, password: SecretValue) -> Iterator[_PgSession]:
        s = target.settings
        ca_file = None
        kwargs: dict[str, Any] = {
            "host": target.host,
            "port": target.port,
            "user": username,
            "dbname": target.database or "postgres",
            "sslmode": s.tls_mode,
            "connect_timeout": max(2, round(s.connect_timeout)),
            "application_name": "kustos-rotator",
            "autocommit": True,
            "options": f"-c statement_timeout={int(s.connect_timeout * 1000) * 2}",
        }
        if s.ca_data:
            fd, ca_file = tempfile.mkstemp(prefix="kustos-ca-", suffix=".pem")
            with os.fdopen(fd, "w") as fh:
                fh.write(s.ca_data)
            kwargs["sslrootcert"] = ca_file
        elif s.tls_mode == "verify-full":
            kwargs["sslrootcert"] = "system"
        try:
            conn = psycopg.connect(password=password.reveal(), **kwargs)
        except psycopg.Error as exc:
            detail = sanitize(str(exc), [password])
            if any(marker in detail for marker in _AUTH_MARKERS):
                raise CredentialsRejectedError(
                    f"PostgreSQL {target} refused user {username!r}: {detail}"
                ) from None
            raise TargetUnreachableError(f"PostgreSQL {target} unreachable: {detail}") from None
        finally:
            if ca_file:
                os.unlink(ca_file)
        try:
            yield _PgSession(conn, target, password)
        finally:
            conn.close()
