"""Benchmark: one database rotation through Kustos's rotators vs. the bare minimum.

    .venv/bin/python bench/rotation_db.py [-n 50]

Uses the servers of `tools/db/dbctl.py` (`KUSTOS_TEST_DB_ENV` or `.local/db/env.json`,
started if needed). For PostgreSQL and MariaDB, on the same server in one run, N times each:

- kustos single-user: createSecret -> setSecret -> testSecret -> finishSecret with the
  `postgresql` / `mysql` rotator (setSecret first checks whether the pending password already
  works, then logs in with AWSCURRENT and sends a client-side hash; testSecret logs in);
- kustos alternating-users: the same with the master logging in to change the other user;
- bare: log in as the user, `ALTER ROLE u PASSWORD '<plaintext>'` (PostgreSQL) or
  `SET PASSWORD = PASSWORD('<plaintext>')` (MariaDB: ALTER USER needs CREATE USER), then log
  in once with the new password. No idempotency check, no client-side hashing, plaintext in
  the server log.

All connections use TLS (sslmode require). Prints the median milliseconds and the ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pymysql

from kustos.models import SecretValue
from kustos.rotation import (
    CreateSecretRequest,
    FinishSecretRequest,
    SetSecretRequest,
    TestSecretRequest,
    generate_password,
    get_rotator,
)

REPO = Path(__file__).resolve().parents[1]


def servers() -> dict[str, Any]:
    env_file = os.environ.get("KUSTOS_TEST_DB_ENV")
    state = Path(env_file).resolve().parent if env_file else REPO / ".local" / "db"
    spec = importlib.util.spec_from_file_location("dbctl", REPO / "tools" / "db" / "dbctl.py")
    assert spec is not None
    assert spec.loader is not None
    dbctl = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dbctl)
    env: dict[str, Any] = dbctl.up(state)
    return env


def pg_connect(e: dict[str, Any], user: str, password: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=e["host"],
        port=e["port"],
        user=user,
        password=password,
        dbname="postgres",
        sslmode="require",
        autocommit=True,
    )


def my_connect(e: dict[str, Any], user: str, password: str) -> Any:
    return pymysql.connect(
        host=e["host"],
        port=e["port"],
        user=user,
        password=password,
        autocommit=True,
        ssl={"check_hostname": False, "verify_mode": 0},
    )


def make_user(kind: str, e: dict[str, Any], user: str, password: str) -> None:
    if kind == "postgresql":
        with pg_connect(e, e["admin_user"], e["admin_password"]) as conn:
            conn.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
    else:
        conn = my_connect(e, e["admin_user"], e["admin_password"])
        with conn, conn.cursor() as cur:
            cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")


def kustos_rotation(kind: str, e: dict[str, Any], strategy: str) -> Callable[[], None]:
    user, password = f"bench_{uuid.uuid4().hex[:8]}", generate_password()
    make_user(
        kind,
        e,
        user,
        password.replace("'", "''")
        if kind == "postgresql"
        else password.replace("\\", "\\\\").replace("'", "\\'"),
    )
    rotator = get_rotator(kind)
    config: dict[str, Any] = {
        "host": e["host"],
        "port": e["port"],
        "strategy": strategy,
        "tls": "require",
    }
    if kind == "postgresql":
        config["database"] = "postgres"
    master = None
    if strategy == "alternating-users":
        config["masterSecretRef"] = {"name": "master"}
        master = SecretValue.from_mapping(
            {"username": e["admin_user"], "password": e["admin_password"]}
        )
    state: dict[str, SecretValue | None] = {
        "current": SecretValue.from_mapping({"username": user, "password": password}),
        "previous": None,
    }

    def rotate() -> None:
        common: dict[str, Any] = dict(
            secret_arn="arn:bench",
            secret_name="bench",
            namespace="bench",
            token=str(uuid.uuid4()),
            config=config,
            current=state["current"],
            previous=state["previous"],
            master=master,
        )
        pending = rotator.create_secret(CreateSecretRequest(**common)).pending
        rotator.set_secret(SetSecretRequest(**common, pending=pending))
        rotator.test_secret(TestSecretRequest(**common, pending=pending))
        rotator.finish_secret(FinishSecretRequest(**common, pending=pending))
        state["previous"], state["current"] = state["current"], pending

    return rotate


def bare_rotation(kind: str, e: dict[str, Any]) -> Callable[[], None]:
    user = f"bare_{uuid.uuid4().hex[:8]}"
    state = {"password": uuid.uuid4().hex}
    make_user(kind, e, user, state["password"])

    def rotate() -> None:
        new = uuid.uuid4().hex
        if kind == "postgresql":
            with pg_connect(e, user, state["password"]) as conn:
                conn.execute(f"ALTER ROLE {user} PASSWORD '{new}'")
            with pg_connect(e, user, new) as conn:
                conn.execute("SELECT 1")
        else:
            conn = my_connect(e, user, state["password"])
            with conn, conn.cursor() as cur:
                cur.execute(f"SET PASSWORD = PASSWORD('{new}')")
            conn = my_connect(e, user, new)
            with conn, conn.cursor() as cur:
                cur.execute("SELECT 1")
        state["password"] = new

    return rotate


def median_ms(fn: Callable[[], None], n: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=50, help="iterations per variant")
    args = parser.parse_args()
    env = servers()
    results: dict[str, dict[str, float]] = {}
    for kind, key in (("postgresql", "postgresql"), ("mysql", "mariadb")):
        e = env[key]
        results[key] = {
            "bare": median_ms(bare_rotation(kind, e), args.n),
            "single-user": median_ms(kustos_rotation(kind, e, "single-user"), args.n),
            "alternating-users": median_ms(kustos_rotation(kind, e, "alternating-users"), args.n),
        }
    print(f"rotation, median of {args.n} iterations (ms), TLS on, 127.0.0.1")
    print(f"{'server':<12}{'bare':>8}{'single':>10}{'ratio':>8}{'altern.':>10}{'ratio':>8}")
    for key, r in results.items():
        print(
            f"{key:<12}{r['bare']:>8.1f}{r['single-user']:>10.1f}"
            f"{r['single-user'] / r['bare']:>7.2f}x{r['alternating-users']:>10.1f}"
            f"{r['alternating-users'] / r['bare']:>7.2f}x"
        )
    print(json.dumps(results))


if __name__ == "__main__":
    main()
