"""Helpers for rotation integration tests: database users, ManagedSecrets that rotate them,
waiting for rotations, and reading what the operator's store labels (decrypted with the
keyring from the cluster) to compare with what the database accepts.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from kustos.crypto import Keyring
from kustos.models import SecretValue
from kustos.models.records import AWSCURRENT, AWSPENDING, AWSPREVIOUS
from kustos.rotation.rotators.mysql import native_password_hash
from kustos.rotation.rotators.postgresql import scram_sha256_verifier
from kustos.services.core.secrets import SecretService
from kustos.store import SqlStore
from tests.kube_helpers import apply, get, managed_secret, secret_data, wait_for

#: Operator settings that make rotation tests fast.
FAST = {
    "KUSTOS_ROTATION_TICK_SECONDS": "0.5",
    "KUSTOS_ROTATION_BACKOFF_SECONDS": "1",
    "KUSTOS_ROTATION_BACKOFF_MAX_SECONDS": "3",
    "KUSTOS_METRICS_PORT": "0",
    "KUSTOS_API_PORT": "0",
}


def make_db_user(server: Any) -> tuple[str, str, str]:
    """A fresh login (user, password, database) that can read one table with 42 in it."""
    user, password = f"app_{uuid.uuid4().hex[:8]}", "initial-" + uuid.uuid4().hex
    if server.kind == "postgresql":
        with server.connect() as conn:
            verifier = scram_sha256_verifier(SecretValue(password))
            conn.execute(f"CREATE ROLE {user} LOGIN PASSWORD '{verifier}'")
            conn.execute(f"CREATE TABLE {user}_t (x int)")
            conn.execute(f"INSERT INTO {user}_t VALUES (42)")  # noqa: S608 - test-made names
            conn.execute(f"GRANT SELECT ON {user}_t TO {user}")
        return user, password, server.database
    db = f"{user}_db"
    with server.connect() as conn, conn.cursor() as cur:
        digest = native_password_hash(SecretValue(password))
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY PASSWORD '{digest}'")
        cur.execute(f"CREATE DATABASE {db}")
        cur.execute(f"CREATE TABLE {db}.t (x int)")
        cur.execute(f"INSERT INTO {db}.t VALUES (42)")  # noqa: S608 - test-made names
        cur.execute(f"GRANT SELECT ON {db}.* TO '{user}'@'%'")
    return user, password, db


def db_kw(server: Any, dbname: str) -> dict[str, str]:
    return {"dbname": dbname} if server.kind == "postgresql" else {"database": dbname}


def reads_42(server: Any, user: str, password: str, dbname: str) -> bool:
    """Log in and read the test table (the grants work, not just the password)."""
    try:
        conn = server.connect(user, password, **db_kw(server, dbname))
    except Exception:
        return False
    try:
        base = user.removesuffix("_clone")
        table = f"{base}_t" if server.kind == "postgresql" else "t"
        if server.kind == "postgresql":
            row = conn.execute(f"SELECT x FROM {table}").fetchone()  # noqa: S608
        else:
            with conn.cursor() as cur:
                cur.execute(f"SELECT x FROM {table}")  # noqa: S608
                row = cur.fetchone()
        return bool(row and row[0] == 42)
    finally:
        conn.close()


def create_db_managed_secret(
    cluster: Any,
    ns: str,
    name: str,
    server: Any,
    strategy: str,
    *,
    rotation: dict[str, Any] | None = None,
    master: tuple[str, str] | None = None,
    host: str | None = None,
    tls: Any = "ca-secret",
) -> tuple[str, str, str]:
    """A ManagedSecret whose first value is a fresh database user's credentials (valueFrom),
    rotated by the postgresql or mysql rotator. Returns (user, password, database).

    `tls`: by default the server is verified against its CA, put in a Secret `<name>-ca`
    (tls.caSecretRef); otherwise the spec's `tls` as given (None: no `tls` at all)."""
    user, password, dbname = make_db_user(server)
    initial = {
        "username": user,
        "password": password,
        "host": server.host,
        "port": str(server.port),
        "dbname": dbname,
    }
    cluster.kubectl(
        "create",
        "secret",
        "generic",
        f"{name}-initial",
        "-n",
        ns,
        *[f"--from-literal={k}={v}" for k, v in initial.items()],
    )
    cluster.kubectl(
        "annotate", "secret", f"{name}-initial", "-n", ns, f"kustos.io/allow-import-by={name}"
    )
    kind = "postgresql" if server.kind == "postgresql" else "mysql"
    config: dict[str, Any] = {"strategy": strategy, "connectTimeoutSeconds": 2}
    if tls == "ca-secret":
        cluster.kubectl(
            "create",
            "secret",
            "generic",
            f"{name}-ca",
            "-n",
            ns,
            f"--from-file=ca.crt={server.ca_path}",
        )
        config["tls"] = {"mode": "verify-full", "caSecretRef": {"name": f"{name}-ca"}}
    elif tls is not None:
        config["tls"] = tls
    if host is not None:
        config.update(host=host, port=server.port)
    if strategy == "alternating-users":
        admin = master or (server.admin_user, server.admin_password)
        cluster.kubectl(
            "create",
            "secret",
            "generic",
            f"{name}-master",
            "-n",
            ns,
            f"--from-literal=username={admin[0]}",
            f"--from-literal=password={admin[1]}",
        )
        cluster.kubectl(  # the master Secret consents to serve this ManagedSecret
            "annotate", "secret", f"{name}-master", "-n", ns, f"kustos.io/allow-import-by={name}"
        )
        config["masterSecretRef"] = {"name": f"{name}-master"}
    spec = {
        "valueFrom": {"secretRef": {"name": f"{name}-initial"}},
        "target": {"type": "kubernetes.io/basic-auth"},
        "rotation": {kind: config, **(rotation or {"rotateImmediately": True})},
    }
    apply(cluster, managed_secret(name, ns, spec))
    return user, password, dbname


def rotations_done(cluster: Any, name: str, ns: str) -> tuple[str | None, str | None]:
    """(token, state) of the rotation the status shows."""
    obj = get(cluster, "managedsecret", name, ns) or {}
    rotation = obj.get("status", {}).get("rotation") or {}
    return rotation.get("token"), rotation.get("state")


def wait_rotated(
    cluster: Any, name: str, ns: str, *, after: str | None = None, timeout: float = 90
) -> dict[str, Any]:
    """Wait for a succeeded rotation whose token is not `after`; the object when projected."""

    def probe() -> dict[str, Any] | None:
        obj = get(cluster, "managedsecret", name, ns) or {}
        status = obj.get("status", {})
        rotation = status.get("rotation") or {}
        if rotation.get("state") != "Succeeded" or rotation.get("token") in (None, after):
            return None
        if status.get("currentVersionId") != rotation["token"]:
            return None
        secret = get(cluster, "secret", name, ns) or {}
        annotations = secret.get("metadata", {}).get("annotations") or {}
        return obj if annotations.get("kustos.io/version-id") == rotation["token"] else None

    return wait_for(probe, timeout=timeout, what=f"rotation of {ns}/{name}")


def projected_creds(cluster: Any, name: str, ns: str) -> dict[str, str]:
    return secret_data(get(cluster, "secret", name, ns) or {})


def store_labels(cluster: Any, runner: Any, name: str, ns: str) -> dict[str, dict[str, Any]]:
    """What the operator's store labels AWSCURRENT / AWSPREVIOUS / AWSPENDING, decrypted."""
    secret = get(cluster, "secret", "kustos-keyring", runner.namespace)
    assert secret is not None
    keyring = Keyring.from_secret_data(secret["data"])
    store = SqlStore(f"sqlite:///{runner.store_path}")
    try:
        service = SecretService(store, lambda: keyring, "test")
        record = next(r for r in store.list_secrets(ns) if r.object_name == name)
        out: dict[str, dict[str, Any]] = {}
        for stage in (AWSCURRENT, AWSPREVIOUS, AWSPENDING):
            version = store.get_version(record.arn, stage=stage)
            if version is not None:
                out[stage] = json.loads(service.open(version).reveal())
        out["_count"] = {"versions": len(store.list_versions(record.arn))}
        return out
    finally:
        store.close()
