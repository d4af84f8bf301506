"""Session fixtures `pg_server` and `mariadb_server`: real database servers for tests.

By default each is started privately for the test session in a temporary directory (through
`tools/db/dbctl.py`, the same code as `make db-up`) and stopped at the end. With
`KUSTOS_TEST_DB_ENV=/path/to/env.json` (written by `dbctl.py up`) the servers described there
are reused (started if they are down) and left running.

Use from `tests/conftest.py`:

    from tests.db_fixture import mariadb_server, pg_server  # noqa: F401  (fixtures)

Every import of this module (as `tests.db_fixture` or `db_fixture`) shares one server per
kind: the registry lives on the one loaded copy of dbctl.

A server object has `host`, `port`, `admin_user`, `admin_password`, `database`, `log_path`,
`ca_path`, `connect(user=None, password=None, **kw)` (admin by default, autocommit on),
`log_text()`, and `stop()` / `start()` / `stopped()` to simulate an unreachable database
(the port is kept across a restart).

`pod_postgres(pods)` starts another, private PostgreSQL that pods can reach too (dbctl's
`PodNetwork`: the node's bridge address, TLS + scram from the pod range only); the caller
stops it with `purge()` (also done at exit). `pg_server` stays loopback-only.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

_REPO = Path(__file__).resolve().parents[1]


def _dbctl() -> ModuleType:
    if "kustos_dbctl" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "kustos_dbctl", _REPO / "tools" / "db" / "dbctl.py"
        )
        assert spec
        assert spec.loader
        module: Any = importlib.util.module_from_spec(spec)  # gains the fixture registry
        sys.modules["kustos_dbctl"] = module
        spec.loader.exec_module(module)
        module.fixture_servers = {}  # kind -> DbServer, shared by every copy of this module
        module.fixture_private_state = []  # temp state dirs to remove at exit
        module.fixture_pod_state = []  # the same, of `pod_postgres` servers
    return sys.modules["kustos_dbctl"]


@dataclass
class DbServer:
    kind: str  # "postgresql" | "mariadb"
    state_dir: Path
    host: str
    port: int
    admin_user: str
    admin_password: str
    database: str
    log_path: Path
    ca_path: Path

    @classmethod
    def from_env(cls, kind: str, state_dir: Path, env: dict[str, Any]) -> DbServer:
        e = env[kind]
        return cls(
            kind,
            state_dir,
            e["host"],
            int(e["port"]),
            e["admin_user"],
            e["admin_password"],
            e["database"],
            Path(e["log_path"]),
            Path(e["ca_path"]),
        )

    def connect(self, user: str | None = None, password: str | None = None, **kw: Any) -> Any:
        """A new autocommit connection (psycopg or pymysql), as admin unless told."""
        user = user or self.admin_user
        password = self.admin_password if password is None else password
        if self.kind == "postgresql":
            import psycopg

            kw.setdefault("dbname", self.database)
            kw.setdefault("connect_timeout", 5)
            return psycopg.connect(
                host=self.host,
                port=self.port,
                user=user,
                password=password,
                autocommit=True,
                **kw,
            )
        import pymysql

        kw.setdefault("connect_timeout", 5)
        return pymysql.connect(
            host=self.host, port=self.port, user=user, password=password, autocommit=True, **kw
        )

    def can_login(self, user: str, password: str, **kw: Any) -> bool:
        try:
            self.connect(user, password, **kw).close()
        except Exception:
            return False
        return True

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        _dbctl().down(self.state_dir, only=self.kind)

    def purge(self) -> None:
        """Stop the server and delete its data (private servers only)."""
        self.stop()
        private: list[Path] = _dbctl().fixture_pod_state
        if self.state_dir in private:
            private.remove(self.state_dir)
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def start(self) -> None:
        env = _dbctl().up(self.state_dir, only=self.kind)
        self.port = int(env[self.kind]["port"])

    @contextmanager
    def stopped(self) -> Iterator[None]:
        self.stop()
        try:
            yield
        finally:
            self.start()


def _server(kind: str) -> DbServer:
    _servers: dict[str, DbServer] = _dbctl().fixture_servers
    _private_state: list[Path] = _dbctl().fixture_private_state
    if kind in _servers:
        return _servers[kind]
    env_file = os.environ.get("KUSTOS_TEST_DB_ENV")
    if env_file:
        state = Path(env_file).resolve().parent
    else:
        if not _private_state:
            _private_state.append(Path(tempfile.mkdtemp(prefix="kustos-db-")))
            atexit.register(_cleanup)
        state = _private_state[0]
    env = _dbctl().up(state, only=kind)
    if env_file:  # the file may name servers the fixtures did not start: re-read it
        env = json.loads(Path(env_file).read_text())
    _servers[kind] = DbServer.from_env(kind, state, env)
    return _servers[kind]


def pod_postgres(pods: Any) -> DbServer:
    """A private PostgreSQL that also serves the pod network `pods` (a dbctl `PodNetwork`)."""
    state = Path(tempfile.mkdtemp(prefix="kustos-db-pods-"))
    _dbctl().fixture_pod_state.append(state)
    atexit.register(_cleanup)
    env = _dbctl().up(state, only="postgresql", pods=pods)
    return DbServer.from_env("postgresql", state, env)


def pod_network(dns_names: tuple[str, ...] = ()) -> Any:
    """The local node's pod network (dbctl's `PodNetwork`, from tools/node/node.py)."""
    return _dbctl().node_pod_network(dns_names)


def _cleanup() -> None:
    """Stop the private servers and remove their state (reused ones are left alone)."""
    _private_state: list[Path] = _dbctl().fixture_private_state
    for state in [*_private_state, *_dbctl().fixture_pod_state]:
        _dbctl().down(state)
        shutil.rmtree(state, ignore_errors=True)
    _private_state.clear()
    _dbctl().fixture_pod_state.clear()
    _dbctl().fixture_servers.clear()


@pytest.fixture(scope="session")
def pg_server() -> DbServer:
    """A running PostgreSQL (scram-sha-256, TLS, log_statement=all)."""
    server = _server("postgresql")
    server.start()  # no-op when running; restarts one a test left stopped
    return server


@pytest.fixture(scope="session")
def mariadb_server() -> DbServer:
    """A running MariaDB (general log on, TLS)."""
    server = _server("mariadb")
    server.start()
    return server
