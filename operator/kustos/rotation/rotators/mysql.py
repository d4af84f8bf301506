"""`mysql`: rotation of MySQL and MariaDB users (see `_database` for strategies and config).

Extra config: `userHost` (default `%`), the host part of the accounts rotated and cloned;
`authPlugin` (default `mysql_native_password`), the authentication plugin of those accounts.

Passwords reach the server only as hashes computed here, so the general log holds hashes,
never passwords. With the default plugin that pins the accounts to mysql_native_password
(`*` + hex SHA1(SHA1(pw))): a rotation moves an account that used another plugin to it.
That plugin is the weakest the servers offer: its stored hash is an unsalted double SHA1,
enough to log in with for anyone who reads it (from `mysql.global_priv` or a backup).
- MariaDB: `SET PASSWORD = '*HEX'` (own), `SET PASSWORD FOR u@h = '*HEX'`,
  `CREATE USER u@h IDENTIFIED BY PASSWORD '*HEX'`;
- MySQL: `ALTER USER ... IDENTIFIED WITH mysql_native_password AS '*HEX'` (MySQL 8.4+
  disables that plugin by default; only MariaDB is exercised by the test suite).

`authPlugin: ed25519` (MariaDB's stronger plugin; the server needs it loaded, `INSTALL SONAME
'auth_ed25519'`) stores an Ed25519 public key derived from the password, computed here too
(`IDENTIFIED VIA ed25519 USING '<base64 key>'`; `SET PASSWORD = '<key>'` for the account's
own), so no plaintext is needed either; logging in proves possession of the private key
without sending anything replayable. With single-user the account must use ed25519 already
(an account may change its own password, not its own plugin, without CREATE USER);
alternating-users moves the accounts to it (the master has CREATE USER). The plaintext
alternative for servers whose plugin cannot be computed client-side (MySQL's
caching_sha2_password) is not offered: it would put the password into the statement.

Alternating users: the clone is created with the base account's privileges by replaying
`SHOW GRANTS FOR base@host` with the grantee replaced (role grants and default roles
included, password clauses dropped). The master needs CREATE USER, SELECT on `mysql` and
GRANT OPTION on everything it replays.
"""

from __future__ import annotations

import base64
import hashlib
import re
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import pymysql

from kustos.errors import InvalidParameterError
from kustos.models import SecretValue
from kustos.rotation.errors import (
    CredentialsRejectedError,
    TargetError,
    TargetUnreachableError,
    sanitize,
)
from kustos.rotation.rotators._config import get_typed
from kustos.rotation.rotators._database import DatabaseRotator, Settings, Target

__all__ = ["AUTH_PLUGINS", "MySQLRotator", "ed25519_password_key", "native_password_hash"]

_ACCESS_DENIED = {1044, 1045, 1698, 1862}
_UNREACHABLE = {2002, 2003, 2005, 2006, 2013, 2026, 2055}
_NO_SUCH_GRANT = 1141
_PASSWORD_CLAUSE = re.compile(r" IDENTIFIED (BY PASSWORD|VIA|WITH) .*?(?= WITH |$)")


NATIVE, ED25519 = "mysql_native_password", "ed25519"
AUTH_PLUGINS = (NATIVE, ED25519)


def ed25519_password_key(password: SecretValue) -> str:
    """What MariaDB's ed25519 plugin stores for `password`: the Ed25519 public key [s]B for
    s = clamp(SHA512(password)[:32]), base64 without padding (as PyMySQL's client signs)."""
    from nacl.bindings import crypto_scalarmult_ed25519_base_noclamp

    digest = bytearray(hashlib.sha512(password.reveal_bytes()).digest()[:32])
    digest[0] &= 248
    digest[31] = (digest[31] & 127) | 64
    key = crypto_scalarmult_ed25519_base_noclamp(bytes(digest))
    return base64.b64encode(key).decode().rstrip("=")


def native_password_hash(password: SecretValue) -> str:
    """The mysql_native_password hash of `password`: `*` + upper hex SHA1(SHA1(password))."""
    inner = hashlib.sha1(password.reveal_bytes()).digest()  # noqa: S324 - the wire format
    return "*" + hashlib.sha1(inner).hexdigest().upper()  # noqa: S324


def _quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class _MySession:
    def __init__(
        self, conn: Any, target: Target, password: SecretValue, host: str, plugin: str = NATIVE
    ) -> None:
        self.conn, self.target, self.password, self.host = conn, target, password, host
        self.plugin = plugin
        self.mariadb = "mariadb" in str(self._run("SELECT VERSION()")[0][0]).lower()
        if plugin == ED25519 and not self.mariadb:
            raise TargetError(
                f"MySQL {target}: authPlugin ed25519 is MariaDB's; this server is MySQL"
            )

    def _run(
        self, query: str, args: tuple[Any, ...] | None = None, *, new: SecretValue | None = None
    ) -> list[tuple[Any, ...]]:
        try:
            with self.conn.cursor() as cur:
                cur.execute(query, args)
                return list(cur.fetchall())
        except pymysql.MySQLError as exc:
            code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
            detail = sanitize(str(exc.args[1] if len(exc.args) > 1 else exc), [self.password, new])
            if code in _UNREACHABLE:
                raise TargetUnreachableError(f"MySQL {self.target}: {detail}") from None
            raise TargetError(
                f"MySQL {self.target} failed (error {code}): {detail}", driver_code=code
            ) from None

    def probe(self) -> None:
        self._run("SELECT 1")

    def set_own_password(self, username: str, password: SecretValue) -> None:
        if self.plugin == ED25519:  # the account uses ed25519 already (see the module doc)
            self._run("SET PASSWORD = %s", (ed25519_password_key(password),), new=password)
            return
        digest = native_password_hash(password)
        if self.mariadb:
            self._run("SET PASSWORD = %s", (digest,), new=password)
        else:
            self._run(
                "ALTER USER CURRENT_USER() IDENTIFIED WITH mysql_native_password AS %s",
                (digest,),
                new=password,
            )

    def _grants(self, username: str) -> list[str] | None:
        try:
            return [row[0] for row in self._run("SHOW GRANTS FOR %s@%s", (username, self.host))]
        except TargetError as exc:
            if exc.driver_code == _NO_SUCH_GRANT:
                return None
            raise

    def user_exists(self, username: str) -> bool:
        return self._grants(username) is not None

    def set_password(self, username: str, password: SecretValue) -> None:
        if self.plugin == ED25519:
            self._run(
                "ALTER USER %s@%s IDENTIFIED VIA ed25519 USING %s",
                (username, self.host, ed25519_password_key(password)),
                new=password,
            )
            return
        digest = native_password_hash(password)
        if self.mariadb:
            self._run("SET PASSWORD FOR %s@%s = %s", (username, self.host, digest), new=password)
        else:
            self._run(
                "ALTER USER %s@%s IDENTIFIED WITH mysql_native_password AS %s",
                (username, self.host, digest),
                new=password,
            )

    def create_clone(self, clone: str, base: str, password: SecretValue) -> None:
        grants = self._grants(base) or []
        digest = native_password_hash(password)
        if self.plugin == ED25519:
            self._run(
                "CREATE USER %s@%s IDENTIFIED VIA ed25519 USING %s",
                (clone, self.host, ed25519_password_key(password)),
                new=password,
            )
        elif self.mariadb:
            self._run(
                "CREATE USER %s@%s IDENTIFIED BY PASSWORD %s",
                (clone, self.host, digest),
                new=password,
            )
        else:
            self._run(
                "CREATE USER %s@%s IDENTIFIED WITH mysql_native_password AS %s",
                (clone, self.host, digest),
                new=password,
            )
        old = f"{_quote_ident(base)}@{_quote_ident(self.host)}"
        new = f"{_quote_ident(clone)}@{_quote_ident(self.host)}"
        for grant in grants:
            statement = _PASSWORD_CLAUSE.sub("", grant)
            statement = statement.replace(f" TO {old}", f" TO {new}")
            statement = statement.replace(f" FOR {old}", f" FOR {new}")
            if statement.startswith(("GRANT ", "SET DEFAULT ROLE ")) and new in statement:
                self._run(statement)


class MySQLRotator(DatabaseRotator):
    name: ClassVar[str] = "mysql"
    engine: ClassVar[str] = "mysql"
    default_port: ClassVar[int] = 3306
    max_username: ClassVar[int] = 80
    extra_keys: ClassVar[frozenset[str]] = frozenset({"userHost", "authPlugin"})

    def settings(self, config: Any) -> Settings:
        s = super().settings(config)
        host = get_typed(self.name, config, "userHost", str, "%")
        if not host or "'" in host:
            raise InvalidParameterError("mysql rotator: userHost must be a non-empty host pattern")
        if get_typed(self.name, config, "authPlugin", str, NATIVE) not in AUTH_PLUGINS:
            raise InvalidParameterError(
                f"mysql rotator: authPlugin must be one of {', '.join(AUTH_PLUGINS)}"
            )
        return s

    @staticmethod
    def _tls(s: Settings) -> dict[str, Any]:
        if s.tls_mode == "disable":
            return {"ssl_disabled": True}
        if s.tls_mode == "require":
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx = (
                ssl.create_default_context(cadata=s.ca_data)
                if s.ca_data
                else ssl.create_default_context()
            )
        return {"ssl": ctx}

    @contextmanager
    def connect(self, target: Target, username: str, password: SecretValue) -> Iterator[_MySession]:
        s = target.settings
        try:
            conn = pymysql.connect(
                host=target.host,
                port=target.port,
                user=username,
                password=password.reveal(),
                database=target.database,
                connect_timeout=s.connect_timeout,
                read_timeout=s.connect_timeout * 2,
                write_timeout=s.connect_timeout * 2,
                autocommit=True,
                **self._tls(s),
            )
        except pymysql.MySQLError as exc:
            code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
            detail = sanitize(str(exc.args[1] if len(exc.args) > 1 else exc), [password])
            if code in _ACCESS_DENIED:
                raise CredentialsRejectedError(
                    f"MySQL {target} refused user {username!r}: {detail}"
                ) from None
            raise TargetUnreachableError(f"MySQL {target} unreachable: {detail}") from None
        except (OSError, ssl.SSLError) as exc:
            raise TargetUnreachableError(
                f"MySQL {target} unreachable: {sanitize(str(exc), [password])}"
            ) from None
        try:
            yield _MySession(
                conn,
                target,
                password,
                str(s.extra.get("userHost", "%")),
                str(s.extra.get("authPlugin", NATIVE)),
            )
        finally:
            conn.close()
