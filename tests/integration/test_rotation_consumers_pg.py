"""An env-var app against real PostgreSQL through 10 rotations, per strategy: does any query
fail? The app's "pods" are threads that read the projected Secret once when they start (as
env vars are) and then log in and query every 10 ms; a restart (Kustos's pod-template patch)
rolls them as a Deployment with maxSurge 1 does: the new pod starts, becomes ready after its
first successful query, then the old pod stops. The operator's services are the real ones;
Kubernetes is the in-memory fake of the unit tier (NOT the node: pod start-up and scheduling
are not measured), with a real 1 s debounce before the restart. Prints the figures that
docs/benchmarks.md reports."""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import psycopg
import pytest
from tests.integration.test_rollback_postgres import _logs_in, _secret
from tests.rotation_helpers import make_db_user
from tests.unit.fakes import FakeSecrets
from tests.unit.rollout_fakes import World, deployment

pytestmark = pytest.mark.db
ROTATIONS = 10


class Pod(threading.Thread):
    def __init__(self, creds: dict[str, str], failures: list[str]) -> None:
        super().__init__(daemon=True)
        self.creds, self.failures = creds, failures
        self.ok = 0
        self.ready = threading.Event()
        self.stopping = threading.Event()

    def run(self) -> None:
        c = self.creds
        while not self.stopping.is_set():
            try:
                with psycopg.connect(
                    host=c["host"],
                    port=int(c["port"]),
                    user=c["username"],
                    password=c["password"],
                    dbname=c["dbname"],
                    sslmode="require",
                    connect_timeout=3,
                ) as conn:
                    conn.execute("SELECT 1").fetchone()
                self.ok += 1
                self.ready.set()
            except psycopg.Error as error:
                self.failures.append(type(error).__name__)
            time.sleep(0.01)


class App:
    """One Deployment's pods; `restart` is a rolling update with maxSurge 1."""

    def __init__(self, kube: FakeSecrets) -> None:
        self.kube, self.restarts = kube, 0
        self.failures: list[str] = []
        self.pod = self._start()

    def _start(self) -> Pod:
        data = self.kube.objects[("team-a", "db")]["data"]
        pod = Pod({k: base64.b64decode(v).decode() for k, v in data.items()}, self.failures)
        pod.start()
        return pod

    def restart(self) -> None:
        self.restarts += 1
        new = self._start()
        assert new.ready.wait(30), "the new pod never became ready"
        old, self.pod = self.pod, new
        old.stopping.set()
        old.join()

    def stop(self) -> None:
        self.pod.stopping.set()
        self.pod.join()


def _run(pg_server: Any, strategy: str) -> dict[str, Any]:
    user, password, dbname = make_db_user(pg_server)
    kube = FakeSecrets()
    kube.create(
        "team-a",
        _secret(
            "db-initial",
            {
                "username": user,
                "password": password,
                "host": pg_server.host,
                "port": str(pg_server.port),
                "dbname": dbname,
            },
            {"kustos.io/allow-import-by": "db"},
        ),
    )
    kube.create(
        "team-a",
        _secret(
            "db-master",
            {"username": pg_server.admin_user, "password": pg_server.admin_password},
            {"kustos.io/allow-import-by": "db"},
        ),
    )
    kube.create("team-a", _secret("db-ca", {"ca.crt": pg_server.ca_path.read_text()}, {}))
    config: dict[str, Any] = {
        "strategy": strategy,
        "connectTimeoutSeconds": 3,
        "tls": {"mode": "verify-full", "caSecretRef": {"name": "db-ca"}},
    }
    if strategy == "alternating-users":
        config["masterSecretRef"] = {"name": "db-master"}
    spec = {
        "name": "prod/db",
        "valueFrom": {"secretRef": {"name": "db-initial"}},
        "rotation": {"rolloutTimeoutSeconds": 60, "postgresql": config},
    }
    w = World(deployment("web", replicas=1), spec=spec, gateway=kube)
    app = App(kube)
    assert app.pod.ready.wait(30)
    per_rotation, retired_late = [], 0
    try:
        for i in range(ROTATIONS):
            before = len(app.failures)
            previous = dict(app.pod.creds)
            w.rotate(f"r{i}")
            assert w.last.error is None, w.last.error
            time.sleep(1.0)  # the debounce window, in real time: the old pod keeps querying
            w.flush_restarts()
            assert [n for n, _ in w.workloads.patches[-1:]] == ["web"]
            app.restart()
            if strategy == "alternating-users":
                # the rollout is not reported finished yet: the old login must still work
                retired_late += not _logs_in(pg_server, previous)
            w.workloads.roll_out("web")
            w.tick(3)
            assert w.rotations.active(w.arn()) is None
            assert not _logs_in(pg_server, previous)  # retired (or changed) once rolled out
            per_rotation.append(len(app.failures) - before)
    finally:
        app.stop()
        w.store.close()
    return {
        "strategy": strategy,
        "failed": per_rotation,
        "restarts": app.restarts,
        "patches": len(w.workloads.patches),
        "retired_before_rollout": retired_late,
    }


def test_alternating_users_no_query_fails_and_old_logins_end_after_the_rollout(
    pg_server: Any,
) -> None:
    result = _run(pg_server, "alternating-users")
    print(f"\nFIGURES {result}")
    assert result["failed"] == [0] * ROTATIONS
    assert result["retired_before_rollout"] == 0
    assert result["restarts"] == result["patches"] == ROTATIONS  # one restart per rotation


def test_single_user_queries_fail_until_the_restart(pg_server: Any) -> None:
    result = _run(pg_server, "single-user")
    print(f"\nFIGURES {result}")
    assert result["restarts"] == ROTATIONS
    # the old pod's password stops working at setSecret; it fails until it is replaced
    assert all(n > 0 for n in result["failed"]), result
