"""Apps that read database credentials from environment variables keep working through
rotations, on the node: real pods, real PostgreSQL, real Deployment rollouts.

The app is example 07 (``examples/07-env-app-through-rotations``: its image built from its
Dockerfile FROM the local base, its Deployment and ManagedSecret as written there, with the
database's address filled in): two replicas that each open a new connection and run a query
every 50 ms with the projected Secret's keys as env vars, so they see a new login only in a
new pod. Each pod keeps a report (counts, the time of its first successful query, its login's
user and password fingerprint) in a hostPath directory of the test, so the counts outlive
the pods. PostgreSQL is ``pod_postgres`` (TLS verified by the app against the server's CA).

The operator runs as a host process beside the cluster (``operator_factory``: admin
kubeconfig, its own SQLite store, from which the test reads each rotation's finish time),
with a 1 s debounce and no rate limit in the way of 10 rotations a minute.

- ``alternating-users``, 10 rotations (``kustos.io/rotate-now``): 0 failed queries across
  all pods; while the rotation waits for the rollout (``awaitRollout``) the previous login
  still works, and once it ended it does not; each rotation restarts the Deployment exactly
  once (one pod-template generation, two new pods). Prints p50/p99 of the time from the
  rotation's finishSecret to every consumer pod running a query with the new login.
  The operator's record of the rotation's end (written just before the retirement) comes
  after every new pod's first query; the margin to the last old pod's SIGTERM is printed.
- The same with old pods that drain 3 s after SIGTERM (as apps behind a Service do): 0 failed
  queries, the previous login retired only after the last old pod ended (the workload's
  status does not count terminating pods; awaitRollout also waits for the pods of older
  templates to be gone, docs/rotation.md).
- 50 ManagedSecrets read by one Deployment (envFrom), rotated by one ``kubectl annotate ms
  --all``: exactly one restart (default debounce), the new pod starts with the 50 new values.
- ``single-user``: the same 10 rotations. Old pods fail from setSecret until they are
  replaced (the old password is gone); the test asserts the app recovers (each rotation's
  new pods query fine, one restart each) and prints the failed queries per rotation.
- A failed rollout: the new pods crash (a ConfigMap value the old pods started without), so
  the rotation holds after ``rolloutTimeoutSeconds``: AWSCURRENT back on the previous version,
  ``RotationFailed`` with reason ``RotationHeld`` and a ``RotationHeld`` Event, the previous
  login not retired, and the old pods keep serving with no failed query.
- Rollback (``alternating-users``): after a rotation, ``kustos rollback --secret-id`` (the
  CLI, run beside the operator) moves AWSCURRENT back onto AWSPREVIOUS, whose login the
  rotation had retired; two rotations later the ``kustos.io/rollback`` annotation names a
  version with no label left (the other user's, retired too). Each time: the database
  refused the version's login before and accepts it after (the status says setSecret and
  testSecret ran with it before AWSCURRENT moved), the labels moved and no version was
  added or lost, the Secret is re-projected, the Deployment restarts exactly once (one
  pod-template generation, two new pods on the rolled-back login) and no query fails.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from tests.db_fixture import DbServer, pod_network, pod_postgres
from tests.kube_helpers import condition, event_reasons, get, ready, secret_data, wait_for
from tests.rotation_helpers import FAST, make_db_user

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "07-env-app-through-rotations"
IMAGE = "orders-db-app:0.1.0"
APP = "orders-db-app"
MS = "orders-db"
REPLICAS = 2
ROTATIONS = 10
OPERATOR_ENV = {
    **FAST,
    "KUSTOS_ROLLOUT_DEBOUNCE_SECONDS": "1",
    "KUSTOS_ROLLOUT_MAX_PER_MINUTE": "1000",
}


@dataclass
class Db:
    pg: DbServer
    address: str  # where pods (and the host operator) reach it: the node's bridge address


@dataclass
class App:
    """One run of example 07 in its own namespace, with its host operator."""

    cluster: Any
    db: Db
    ns: str
    reports: Path
    store: Path
    #: the host operator (its env serves `kustos rollback` too)
    runner: Any = None
    failed_before: int = 0
    seen_pods: set[str] = field(default_factory=set)

    def ms(self) -> dict[str, Any]:
        found = get(self.cluster, "managedsecret", MS, self.ns)
        assert found is not None
        return found

    def creds(self) -> dict[str, str]:
        return secret_data(get(self.cluster, "secret", MS, self.ns) or {})

    def deployment(self) -> dict[str, Any]:
        found = get(self.cluster, "deployment", APP, self.ns)
        assert found is not None
        return found

    def read_reports(self) -> list[dict[str, Any]]:
        out = []
        for path in self.reports.glob("*.json"):
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, json.JSONDecodeError):  # replaced under us: read it next time
                continue
        self.seen_pods |= {r["pod"] for r in out}
        return out

    def finished_at(self, token: str) -> float:
        """When finishSecret moved AWSCURRENT, from the operator's store (microseconds)."""
        with sqlite3.connect(f"file:{self.store}?mode=ro", uri=True) as conn:
            row = conn.execute("SELECT finished_at FROM rotations WHERE token = ?", (token,))
            (value,) = row.fetchone()
        moment = datetime.strptime(value, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
        return moment.timestamp()

    def closed_at(self, token: str) -> float:
        """When the operator saw every consumer rolled out and went on to retire the previous
        login (the rotation's last update, written just before the retirement)."""
        with sqlite3.connect(f"file:{self.store}?mode=ro", uri=True) as conn:
            row = conn.execute(
                "SELECT updated_at FROM rotations WHERE token = ? AND status = 'Succeeded'",
                (token,),
            )
            (value,) = row.fetchone()
        moment = datetime.strptime(value, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
        return moment.timestamp()

    def logs_in(self, creds: dict[str, str]) -> bool:
        try:
            psycopg.connect(
                host=self.db.address,
                port=self.db.pg.port,
                user=creds["username"],
                password=creds["password"],
                dbname=creds["dbname"],
                sslmode="verify-full",
                sslrootcert=str(self.db.pg.ca_path),
                connect_timeout=10,
            ).close()
        except psycopg.OperationalError as error:
            if "password authentication failed" in str(error):
                return False
            raise  # anything else is not an answer to the question
        return True


def _fingerprint(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()[:12]


def _runs(report: dict[str, Any], creds: dict[str, str]) -> bool:
    return bool(
        report["user"] == creds["username"]
        and report["password_sha"] == _fingerprint(creds["password"])
    )


@pytest.fixture(scope="module")
def db(node_cluster: Any, example_image: Callable[..., str]) -> Iterator[Db]:
    if node_cluster.control_plane is None:
        pytest.skip("the test PostgreSQL runs on this machine: the local node only")
    node_cluster.apply_crds()
    example_image(EXAMPLE.name, IMAGE)
    network = pod_network()
    pg = pod_postgres(network)
    try:
        yield Db(pg, network.address)
    finally:
        pg.purge()


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((EXAMPLE / name).read_text()) if d]


def _start(
    cluster: Any,
    db: Db,
    operator_factory: Any,
    tmp_path: Path,
    strategy: str,
    rollout_timeout: int = 120,
    config_map: bool = False,
    drain_seconds: float = 0,
) -> App:
    runner = operator_factory(**OPERATOR_ENV)
    runner.start()
    ns = f"consumers-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", ns)
    reports = tmp_path / "reports"
    reports.mkdir()
    reports.chmod(0o777)  # the app runs as 65532
    app = App(cluster, db, ns, reports, runner.store_path, runner)
    user, password, dbname = make_db_user(db.pg)
    consent = {"kustos.io/allow-import-by": MS}
    secrets: list[tuple[str, dict[str, str], dict[str, str]]] = [
        (
            "orders-db-initial",
            {
                "username": user,
                "password": password,
                "host": db.address,
                "port": str(db.pg.port),
                "dbname": dbname,
            },
            consent,
        ),
        (
            "orders-db-master",
            {"username": db.pg.admin_user, "password": db.pg.admin_password},
            consent,
        ),
        ("orders-db-ca", {"ca.crt": db.pg.ca_path.read_text()}, {}),
    ]
    for name, data, notes in secrets:
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": ns, "annotations": notes},
            "stringData": data,
        }
        # Server-side: no last-applied annotation repeating the password.
        cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(secret))

    (ms,) = _docs("managedsecret.yaml")
    rotation = ms["spec"]["rotation"]
    rotation["rolloutTimeoutSeconds"] = rollout_timeout
    rotation["postgresql"]["strategy"] = strategy
    if strategy == "single-user":
        del rotation["postgresql"]["masterSecretRef"]
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(ms))
    wait_for(lambda: ready(cluster, MS, ns), timeout=120, what=f"{MS} Ready")

    (deploy,) = _docs("deployment.yaml")
    pod = deploy["spec"]["template"]["spec"]
    container = pod["containers"][0]
    container["env"].append({"name": "REPORT_DIR", "value": "/reports"})
    if drain_seconds:
        container["env"].append({"name": "DRAIN_SECONDS", "value": str(drain_seconds)})
    container["volumeMounts"].append({"name": "reports", "mountPath": "/reports"})
    pod["volumes"].append(
        {"name": "reports", "hostPath": {"path": str(reports), "type": "Directory"}}
    )
    if config_map:  # a setting the pods read at start (the failed-rollout test breaks it)
        cluster.kubectl("create", "configmap", APP, "-n", ns, "--from-literal=interval=0.05")
        container["env"].append(
            {
                "name": "QUERY_INTERVAL_SECONDS",
                "valueFrom": {"configMapKeyRef": {"name": APP, "key": "interval"}},
            }
        )
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(deploy))
    _rolled_out(app)
    wait_for(
        lambda: _running(app, app.creds()) == REPLICAS,
        timeout=120,
        what="both pods querying",
    )
    return app


def _rolled_out(app: App, timeout: int = 240) -> None:
    try:
        app.cluster.kubectl(
            "-n",
            app.ns,
            "rollout",
            "status",
            f"deploy/{APP}",
            f"--timeout={timeout}s",
            timeout=timeout + 30,
        )
    except AssertionError as e:
        described = app.cluster.kubectl("-n", app.ns, "describe", "pods", check=False).stdout
        raise AssertionError(f"{APP} not rolled out:\n{described[-4000:]}") from e


def _running(app: App, creds: dict[str, str]) -> int:
    """How many live pods have queried with `creds`."""
    return sum(
        1
        for r in app.read_reports()
        if _runs(r, creds) and r["first_ok"] is not None and r["stopped"] is None
    )


def _failed(app: App) -> int:
    return sum(int(r["failed"]) for r in app.read_reports())


def _stop(app: App) -> None:
    app.cluster.kubectl("delete", "namespace", app.ns, "--wait=true", timeout=240, check=False)


@dataclass
class Rotation:
    token: str
    saw_previous_login_while_awaiting: bool
    seconds_to_all_pods: float
    #: from the last old pod's SIGTERM / its last query to the retirement (negative: the
    #: login was retired while an old pod was still terminating)
    retired_after_sigterm: float
    retired_after_last_old_query: float
    failed: int
    generations: int
    new_pods: int


def _rotate(app: App, i: int) -> Rotation:
    previous = app.creds()
    before = app.ms().get("status", {}).get("rotation") or {}
    generation = app.deployment()["metadata"]["generation"]
    pods_before = {r["pod"] for r in app.read_reports()}
    failed_before = _failed(app)
    app.cluster.kubectl(
        "annotate",
        "ms",
        MS,
        "-n",
        app.ns,
        f"kustos.io/rotate-now=r{i}-{uuid.uuid4().hex[:6]}",
        "--overwrite",
    )
    saw_previous = False
    deadline = time.monotonic() + 240
    while True:
        assert time.monotonic() < deadline, f"rotation {i} did not end: {before}"
        rotation = app.ms().get("status", {}).get("rotation") or {}
        if rotation.get("token") not in (None, before.get("token")):
            state, step = rotation.get("state"), rotation.get("step")
            assert state in ("InProgress", "Succeeded"), rotation
            if state == "Succeeded":
                break
            if step == "awaitRollout" and not saw_previous:
                # finishSecret is behind: the app's new pods are starting, the old ones still
                # log in with the previous credentials
                saw_previous = app.logs_in(previous)
        time.sleep(0.1)
    token = rotation["token"]
    new = app.creds()
    assert new != previous
    deploy = app.deployment()
    status = deploy.get("status", {})
    marker = deploy["spec"]["template"]["metadata"]["annotations"]["kustos.io/secret-versions"]
    # the rotation ended: the Deployment had rolled the new version out
    assert json.loads(marker)[MS] == token
    assert status.get("updatedReplicas") == status.get("availableReplicas") == REPLICAS, status
    assert not app.logs_in(previous), "the previous login works after the rotation ended"
    # every old pod stopped (and wrote its last counts), every new pod queries
    wait_for(
        lambda: all(r["stopped"] is not None for r in app.read_reports() if _runs(r, previous)),
        timeout=60,
        what="the old pods stopped",
    )
    finished = app.finished_at(token)
    firsts = wait_for(
        lambda: (
            f
            if len(
                f := [
                    r["first_ok"]
                    for r in app.read_reports()
                    if _runs(r, new) and r["first_ok"] is not None and r["stopped"] is None
                ]
            )
            == REPLICAS
            else None
        ),
        timeout=60,
        what="the new pods querying",
    )
    new_pods = {r["pod"] for r in app.read_reports()} - pods_before
    closed = app.closed_at(token)
    # retired after every new pod ran its first query (it is Ready only after that)
    assert closed > max(firsts), (closed, firsts)
    old = [r for r in app.read_reports() if _runs(r, previous)]
    return Rotation(
        token=token,
        saw_previous_login_while_awaiting=saw_previous,
        seconds_to_all_pods=max(firsts) - finished,
        retired_after_sigterm=closed - max(r.get("terminating") or r["stopped"] for r in old),
        retired_after_last_old_query=closed - max(r["last_ok"] or 0 for r in old),
        failed=_failed(app) - failed_before,
        generations=app.deployment()["metadata"]["generation"] - generation,
        new_pods=len(new_pods),
    )


def _figures(strategy: str, rotations: list[Rotation]) -> str:
    times = sorted(r.seconds_to_all_pods for r in rotations)
    p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
    return (
        f"\nFIGURES consumers on the node, {strategy}: {len(rotations)} rotations, "
        f"{REPLICAS} pods; rotation finish -> all pods on the new login: "
        f"p50 {statistics.median(times):.2f} s, p99 {p99:.2f} s, max {times[-1]:.2f} s; "
        f"failed queries per rotation {[r.failed for r in rotations]}; "
        f"restarts (pod-template generations) per rotation {[r.generations for r in rotations]}; "
        f"retired after the last old pod's SIGTERM by "
        f"{[round(r.retired_after_sigterm, 2) for r in rotations]} s, after its last query by "
        f"{[round(r.retired_after_last_old_query, 2) for r in rotations]} s"
    )


def test_alternating_users_10_rotations_fail_no_query_and_retire_after_the_rollout(
    node_cluster: Any, db: Db, operator_factory: Any, tmp_path: Path
) -> None:
    app = _start(node_cluster, db, operator_factory, tmp_path, "alternating-users")
    try:
        rotations = [_rotate(app, i) for i in range(ROTATIONS)]
        print(_figures("alternating-users", rotations))
        reports = app.read_reports()
        print(f"queries: {sum(r['ok'] for r in reports)} ok, {_failed(app)} failed")
        assert _failed(app) == 0, [r["errors"] for r in reports if r["failed"]]
        assert [r.generations for r in rotations] == [1] * ROTATIONS
        assert [r.new_pods for r in rotations] == [REPLICAS] * ROTATIONS
        assert len(app.seen_pods) == REPLICAS * (ROTATIONS + 1)
        assert all(r.saw_previous_login_while_awaiting for r in rotations)
        assert len({r.token for r in rotations}) == ROTATIONS
    finally:
        _stop(app)


def test_alternating_users_an_app_that_drains_after_sigterm_fails_no_query(
    node_cluster: Any, db: Db, operator_factory: Any, tmp_path: Path
) -> None:
    app = _start(node_cluster, db, operator_factory, tmp_path, "alternating-users", drain_seconds=3)
    try:
        rotations = [_rotate(app, i) for i in range(3)]
        print(_figures("alternating-users, old pods drain 3 s after SIGTERM", rotations))
        assert _failed(app) == 0, [r["errors"][-1:] for r in app.read_reports() if r["failed"]]
        # retired once the old pods' drain was over, not when the status said rolled out
        assert all(r.retired_after_last_old_query > 0 for r in rotations), rotations
        assert all(r.retired_after_sigterm > 0 for r in rotations), rotations
    finally:
        _stop(app)


def test_single_user_10_rotations_old_pods_fail_until_replaced_and_the_app_recovers(
    node_cluster: Any, db: Db, operator_factory: Any, tmp_path: Path
) -> None:
    app = _start(node_cluster, db, operator_factory, tmp_path, "single-user")
    try:
        rotations = [_rotate(app, i) for i in range(ROTATIONS)]
        print(_figures("single-user", rotations))
        reports = app.read_reports()
        print(f"queries: {sum(r['ok'] for r in reports)} ok, {_failed(app)} failed")
        # "OperationalError: connection failed: ... FATAL:  password authentication failed
        # for user ...": what the server says, without the address and the user's name
        why = {
            e[1].split("FATAL:")[-1].split(" for user")[0].strip()
            for r in reports
            for e in r["errors"]
        }
        print(f"why they failed: {sorted(why)}")
        assert why == {"password authentication failed"}, why
        assert [r.generations for r in rotations] == [1] * ROTATIONS
        assert [r.new_pods for r in rotations] == [REPLICAS] * ROTATIONS
        # recovered: the pods running now query with the current login and never failed
        live = [r for r in reports if r["stopped"] is None]
        assert len(live) == REPLICAS and all(_runs(r, app.creds()) for r in live)
        assert all(r["failed"] == 0 and r["ok"] > 0 for r in live), live
        # the old password stopped working at setSecret: what failed was old pods' logins
        failing = [r for r in reports if r["failed"]]
        assert all(r["stopped"] is not None for r in failing)
    finally:
        _stop(app)


def test_a_rollout_that_fails_holds_the_rotation_and_the_old_pods_keep_serving(
    node_cluster: Any, db: Db, operator_factory: Any, tmp_path: Path
) -> None:
    app = _start(
        node_cluster,
        db,
        operator_factory,
        tmp_path,
        "alternating-users",
        rollout_timeout=15,
        config_map=True,
    )
    try:
        previous, version = app.creds(), app.ms()["status"]["currentVersionId"]
        old_pods = {r["pod"] for r in app.read_reports()}
        # A setting the running pods read at start breaks: every new pod exits at once.
        app.cluster.kubectl(
            "patch",
            "configmap",
            APP,
            "-n",
            app.ns,
            "--type=merge",
            "-p",
            json.dumps({"data": {"interval": "broken"}}),
        )
        app.cluster.kubectl(
            "annotate", "ms", MS, "-n", app.ns, "kustos.io/rotate-now=doomed", "--overwrite"
        )

        def held() -> dict[str, Any] | None:
            rotation = app.ms().get("status", {}).get("rotation") or {}
            return rotation if rotation.get("state") == "Held" else None

        rotation = wait_for(held, timeout=180, interval=0.5, what="the rotation held")
        obj = app.ms()
        failed = condition(obj, "RotationFailed") or {}
        assert (failed.get("status"), failed.get("reason")) == ("True", "RotationHeld"), failed
        assert f"Deployment/{APP}" in failed.get("message", "")
        assert "RotationHeld" in event_reasons(app.cluster, MS, app.ns)
        # AWSCURRENT is back on the version the rotation started from, and so is the Secret
        assert obj["status"]["currentVersionId"] == version
        assert app.creds() == previous
        assert app.logs_in(previous)  # not retired
        print(f"\nheld: {rotation}")
        # The old pods serve on: still the same pods, still querying, nothing failed.
        ok_then = {r["pod"]: r["ok"] for r in app.read_reports() if r["pod"] in old_pods}
        wait_for(
            lambda: all(
                r["ok"] > ok_then[r["pod"]] + 20 for r in app.read_reports() if r["pod"] in old_pods
            ),
            timeout=60,
            what="the old pods still querying",
        )
        live = {r["pod"] for r in app.read_reports() if r["stopped"] is None}
        assert live == old_pods
        assert _failed(app) == 0

        # the pods that did not roll out are the new ones, and they crashed (the kubelet's
        # Events outlive the pods the rollback replaced)
        def crashed() -> list[str]:
            listed = app.cluster.kubectl("get", "events", "-n", app.ns, "-o", "json").stdout
            return [
                e["involvedObject"]["name"]
                for e in json.loads(listed)["items"]
                if e["involvedObject"].get("kind") == "Pod"
                and e["involvedObject"]["name"] not in old_pods
                and e["reason"] == "BackOff"
            ]

        wait_for(crashed, timeout=60, what="a new pod crash-looping")

        # ...and the Deployment is asked back onto the version AWSCURRENT is on again
        def marker() -> str:
            template = app.deployment()["spec"]["template"]["metadata"]
            return str(json.loads(template["annotations"]["kustos.io/secret-versions"])[MS])

        wait_for(lambda: marker() == version, timeout=60, what="the rollback's restart")
    finally:
        _stop(app)


def test_50_managed_secrets_of_one_deployment_rotated_at_once_restart_it_once(
    node_cluster: Any, operator_factory: Any
) -> None:
    """50 ManagedSecrets (generated) that one Deployment reads by envFrom, all rotated by one
    `kubectl annotate ms --all`: one restart (the default 10 s debounce), and the new pod
    starts with all 50 new values."""
    node_cluster.apply_crds()
    operator_factory(**FAST).start()
    ns = f"fifty-{uuid.uuid4().hex[:8]}"
    cluster = node_cluster
    cluster.kubectl("create", "namespace", ns)
    names = [f"s{i:02d}" for i in range(50)]
    try:
        items = [
            {
                "apiVersion": "kustos.io/v1alpha1",
                "kind": "ManagedSecret",
                "metadata": {"name": n, "namespace": ns},
                "spec": {
                    "generate": {"passwordLength": 16, "keys": ["password"]},
                    "rotation": {"generated": {}},
                },
            }
            for n in names
        ]
        cluster.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
        )

        def listed() -> list[dict[str, Any]]:
            out = cluster.kubectl("get", "ms", "-n", ns, "-o", "json").stdout
            found: list[dict[str, Any]] = json.loads(out)["items"]
            return found

        def all_ready() -> bool:
            objs = listed()
            return len(objs) == 50 and all(
                (condition(o) or {}).get("status") == "True" for o in objs
            )

        wait_for(all_ready, timeout=240, interval=1, what="50 ManagedSecrets Ready")
        # The app prints a digest of the 50 passwords it started with (never a value).
        script = (
            "import hashlib, os, time\n"
            "names = sorted(k for k in os.environ if k.endswith('_password'))\n"
            "d = hashlib.sha256('|'.join(os.environ[k] for k in names).encode()).hexdigest()\n"
            "print(f'started with {len(names)} passwords, digest {d[:16]}', flush=True)\n"
            "time.sleep(3600)\n"
        )
        deploy = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "fifty",
                "namespace": ns,
                "annotations": {"kustos.io/restart-on-change": "true"},
            },
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "fifty"}},
                "template": {
                    "metadata": {"labels": {"app": "fifty"}},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "terminationGracePeriodSeconds": 0,
                        "containers": [
                            {
                                "name": "app",
                                "image": cluster.base_image,
                                "imagePullPolicy": "Never",
                                "command": ["python3", "-c", script],
                                "envFrom": [
                                    {"prefix": f"{n.upper()}_", "secretRef": {"name": n}}
                                    for n in names
                                ],
                            }
                        ],
                    },
                },
            },
        }
        cluster.kubectl("apply", "-f", "-", input=json.dumps(deploy))
        cluster.kubectl(
            "-n", ns, "rollout", "status", "deploy/fifty", "--timeout=180s", timeout=200
        )

        def digest() -> str:
            values = [secret_data(get(cluster, "secret", n, ns) or {})["password"] for n in names]
            return hashlib.sha256("|".join(values).encode()).hexdigest()[:16]

        def logged(value: str) -> bool:
            out = cluster.kubectl("-n", ns, "logs", "deploy/fifty", check=False).stdout
            return f"started with 50 passwords, digest {value}" in out

        wait_for(lambda: logged(digest()), timeout=60, what="the pod read the 50 passwords")
        generation = get(cluster, "deployment", "fifty", ns)["metadata"]["generation"]  # type: ignore[index]
        before = {o["metadata"]["name"]: o["status"]["currentVersionId"] for o in listed()}
        cluster.kubectl("annotate", "ms", "--all", "-n", ns, "kustos.io/rotate-now=all-at-once")

        def all_rotated() -> dict[str, str] | None:
            objs = listed()
            rotated = {
                o["metadata"]["name"]: o["status"]["currentVersionId"]
                for o in objs
                if (o["status"].get("rotation") or {}).get("state") == "Succeeded"
                and o["status"]["currentVersionId"] != before[o["metadata"]["name"]]
            }
            return rotated if len(rotated) == 50 else None

        after = wait_for(all_rotated, timeout=300, interval=1, what="50 rotations Succeeded")
        deploy_now = get(cluster, "deployment", "fifty", ns) or {}
        marker = json.loads(
            deploy_now["spec"]["template"]["metadata"]["annotations"]["kustos.io/secret-versions"]
        )
        print(
            f"\n50 rotated at once: {deploy_now['metadata']['generation'] - generation} restart(s)"
        )
        assert marker == after
        assert deploy_now["metadata"]["generation"] == generation + 1
        cluster.kubectl(
            "-n", ns, "rollout", "status", "deploy/fifty", "--timeout=180s", timeout=200
        )
        wait_for(lambda: logged(digest()), timeout=60, what="the new pod read the 50 new values")
    finally:
        cluster.kubectl("delete", "namespace", ns, "--wait=true", timeout=240, check=False)


# -- rollback (`kustos rollback`, the kustos.io/rollback annotation) -----------------------


def _stages(app: App) -> dict[str, list[str]]:
    """Every version of the secret in the operator's store, with its labels."""
    from kustos.store import SqlStore

    store = SqlStore(f"sqlite:///{app.store}")
    try:
        record = next(r for r in store.list_secrets(app.ns) if r.object_name == MS)
        return {v.version_id: sorted(v.stages) for v in store.list_versions(record.arn)}
    finally:
        store.close()


def _cli_rollback(app: App, version_id: str | None = None) -> dict[str, Any]:
    """`kustos rollback --secret-id prod/orders/db` as a user runs it beside the operator
    (its kubeconfig and store); the JSON it prints."""
    args = ["rollback", "--secret-id", "prod/orders/db", "--namespace", app.ns]
    if version_id is not None:
        args += ["--version-id", version_id]
    done = subprocess.run(
        [sys.executable, "-m", "kustos.cli.main", *args],
        env=app.runner.env,
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    assert done.returncode == 0, (done.stdout, done.stderr[-2000:])
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def _annotation_rollback(app: App, request: str) -> dict[str, Any]:
    """`kubectl annotate ms orders-db kustos.io/rollback=<request>`; the status's answer."""
    app.cluster.kubectl(
        "annotate", "ms", MS, "-n", app.ns, f"kustos.io/rollback={request}", "--overwrite"
    )

    def answered() -> dict[str, Any] | None:
        found = app.ms().get("status", {}).get("rollback") or {}
        return found if found.get("request") == request else None

    return wait_for(answered, timeout=180, interval=0.2, what=f"rollback {request} answered")


@dataclass
class Rollback:
    how: str
    seconds_to_answer: float
    seconds_to_all_pods: float
    failed: int
    generations: int
    new_pods: int


def _roll_back(
    app: App, how: str, target: str, target_creds: dict[str, str], ask: Callable[[], str]
) -> Rollback:
    """Roll back onto version `target` (whose credentials are `target_creds`) with `ask`
    (returns the request the status answers), and check what must hold after it."""
    status = app.ms()["status"]
    before, current = status["currentVersionId"], app.creds()
    stages_before = _stages(app)
    generation = app.deployment()["metadata"]["generation"]
    pods_before = {r["pod"] for r in app.read_reports()}
    failed_before = _failed(app)
    # the rotations since retired them (or gave the user another password): refused now
    assert not app.logs_in(target_creds), "the target version logs in before the rollback"
    started, started_at = time.monotonic(), time.time()
    request = ask()
    answer = app.ms()["status"]["rollback"]
    answered = time.monotonic() - started
    assert answer["request"] == request, answer
    assert answer["state"] == "Succeeded", answer
    assert (answer["fromVersion"], answer["toVersion"]) == (before, target), answer
    # setSecret and testSecret with the target's credentials, before AWSCURRENT moved
    assert "postgresql accepts it again" in answer["message"], answer
    assert "testSecret passed" in answer["message"], answer
    assert target_creds["password"] not in json.dumps(app.ms())
    assert app.logs_in(target_creds)
    assert app.logs_in(current)  # the old pods' login: not retired by a rollback
    # the labels moved, no version was added or lost
    stages = _stages(app)
    assert set(stages) == set(stages_before), (stages_before, stages)
    assert stages[target] == ["AWSCURRENT"], stages
    assert stages[before] == ["AWSPREVIOUS"], stages
    assert sum(1 for labels in stages.values() if labels) == 2, stages
    wait_for(
        lambda: app.ms()["status"].get("currentVersionId") == target,
        timeout=60,
        what="status.currentVersionId on the target",
    )
    # re-projected
    wait_for(lambda: app.creds() == target_creds, timeout=60, what="the Secret re-projected")

    # the Deployment restarts onto the target version: its pods start on its login
    def marker() -> str | None:
        notes = app.deployment()["spec"]["template"]["metadata"].get("annotations") or {}
        versions: dict[str, str] = json.loads(notes.get("kustos.io/secret-versions") or "{}")
        return versions.get(MS)

    wait_for(lambda: marker() == target, timeout=60, what="the rollback's restart")
    _rolled_out(app)
    wait_for(
        lambda: _running(app, target_creds) == REPLICAS,
        timeout=120,
        what="the new pods querying with the target's login",
    )
    firsts = [
        r["first_ok"]
        for r in app.read_reports()
        if _runs(r, target_creds) and r["first_ok"] is not None and r["stopped"] is None
    ]
    wait_for(
        lambda: all(r["stopped"] is not None for r in app.read_reports() if _runs(r, current)),
        timeout=60,
        what="the old pods stopped",
    )
    return Rollback(
        how=how,
        seconds_to_answer=answered,
        seconds_to_all_pods=max(firsts) - started_at,
        failed=_failed(app) - failed_before,
        generations=app.deployment()["metadata"]["generation"] - generation,
        new_pods=len({r["pod"] for r in app.read_reports()} - pods_before),
    )


def test_rollback_by_cli_and_by_annotation_restores_the_login_restarts_once_fails_nothing(
    node_cluster: Any, db: Db, operator_factory: Any, tmp_path: Path
) -> None:
    """alternating-users. After a rotation, `kustos rollback` moves AWSCURRENT back onto
    AWSPREVIOUS, whose login the rotation had retired: the database accepts it again, the
    Secret is re-projected, the Deployment restarts once, no query fails. Two rotations
    later, the annotation names a version with no label left (the other user's, retired
    too): the same holds."""
    app = _start(node_cluster, db, operator_factory, tmp_path, "alternating-users")
    try:
        v0, creds0 = app.ms()["status"]["currentVersionId"], app.creds()
        r1 = _rotate(app, 0)
        creds1 = app.creds()
        assert creds1["username"] == creds0["username"] + "_clone"
        assert r1.failed == 0
        cli_answer: dict[str, Any] = {}

        def by_cli() -> str:
            cli_answer.update(_cli_rollback(app))
            return str(app.ms()["status"]["rollback"]["request"])

        back = [_roll_back(app, "kustos rollback (AWSPREVIOUS)", v0, creds0, by_cli)]
        assert (cli_answer["VersionId"], cli_answer["PreviousVersionId"]) == (v0, r1.token)
        assert cli_answer["Name"] == "prod/orders/db"
        # two more rotations: creds1's user (the clone) rotates, then is retired again
        _rotate(app, 1)
        _rotate(app, 2)
        assert app.creds()["username"] == creds0["username"]
        assert _stages(app)[r1.token] == []  # no label left on it
        request = f"{r1.token}#e2e-{uuid.uuid4().hex[:6]}"

        def by_annotation() -> str:
            _annotation_rollback(app, request)
            return request

        back.append(
            _roll_back(
                app, "kustos.io/rollback=<version id> (no label)", r1.token, creds1, by_annotation
            )
        )
        for b in back:
            print(
                f"\nFIGURES rollback on the node ({b.how}): answered in "
                f"{b.seconds_to_answer:.2f} s; all {REPLICAS} pods on the rolled-back login "
                f"{b.seconds_to_all_pods:.2f} s after the request; failed queries {b.failed}; "
                f"restarts (pod-template generations) {b.generations}; new pods {b.new_pods}"
            )
        reports = app.read_reports()
        print(f"queries: {sum(r['ok'] for r in reports)} ok, {_failed(app)} failed")
        assert _failed(app) == 0, [r["errors"] for r in reports if r["failed"]]
        assert [b.generations for b in back] == [1, 1]
        assert [b.new_pods for b in back] == [REPLICAS, REPLICAS]
    finally:
        _stop(app)
