"""Rotation with the real operator, a real apiserver and real PostgreSQL and MariaDB servers.

Generated values on a rate schedule and on demand; database credentials with the
single-user and alternating-users strategies, proving that the projected Secret's
credentials log in after each rotation, that AWSPREVIOUS is kept, that with alternating
users the old credentials keep working, and that a connection held open across rotations
keeps working. Failures: database unreachable, wrong master credentials, and bad input
refused at admission or reported in status with nothing rotated.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.db_fixture import mariadb_server, pg_server  # noqa: F401
from tests.kube_helpers import (
    apply,
    condition,
    event_reasons,
    events,
    get,
    managed_secret,
    new_namespace,
    present,
    ready,
    secret_data,
    wait_for,
)
from tests.rotation_helpers import (
    FAST,
    create_db_managed_secret,
    projected_creds,
    reads_42,
    store_labels,
    wait_rotated,
)

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster(kube_cluster: Any) -> Any:
    kube_cluster.apply_crds()
    return kube_cluster


@pytest.fixture
def operator(operator_factory: Any) -> Any:
    runner = operator_factory(**FAST)
    runner.start()
    return runner


def annotate_rotate_now(cluster: Any, name: str, ns: str, value: str) -> None:
    cluster.kubectl(
        "annotate", "--overwrite", "ms", name, "-n", ns, f"kustos.io/rotate-now={value}"
    )


GENERATED = {
    "generate": {"passwordLength": 24, "excludePunctuation": True},
    "target": {"staticData": {"username": "svc"}},
}


def test_generated_rotation_on_rate_schedule_and_on_demand(cluster: Any, operator: Any) -> None:
    ns = new_namespace(cluster)
    spec = {**GENERATED, "rotation": {"schedule": "rate(1 minute)", "generated": {}}}
    apply(cluster, managed_secret("gen", ns, spec))
    first = wait_for(lambda: ready(cluster, "gen", ns))["status"]["currentVersionId"]
    before = secret_data(get(cluster, "secret", "gen", ns) or {})
    obj = wait_for(
        lambda: (o := get(cluster, "ms", "gen", ns)) and o["status"].get("nextRotationAt") and o,
        what="nextRotationAt",
    )
    due = datetime.fromisoformat(obj["status"]["nextRotationAt"].replace("Z", "+00:00"))
    assert 30 < (due - datetime.now(UTC)).total_seconds() <= 61

    # The schedule falls due: one rotation, AWSCURRENT moves, the previous value is kept.
    obj = wait_rotated(cluster, "gen", ns, timeout=120)
    status = obj["status"]
    assert status["rotation"]["trigger"] == "schedule"
    stages = {v["versionId"]: v["stages"] for v in status["versions"]}
    assert stages[first] == ["AWSPREVIOUS"] and stages[status["currentVersionId"]] == ["AWSCURRENT"]
    after = secret_data(get(cluster, "secret", "gen", ns) or {})
    assert after["username"] == "svc" and len(after["password"]) == 24
    assert after["password"] != before["password"] and after["password"].isalnum()
    assert status["lastRotatedAt"] and status["nextRotationAt"] > status["lastRotatedAt"]
    table = cluster.kubectl("get", "ms", "gen", "-n", ns).stdout
    assert "LAST ROTATED" in table and "NEXT ROTATION" in table

    # rotate-now: a new annotation value rotates at once; the same value again does not.
    token = status["rotation"]["token"]
    annotate_rotate_now(cluster, "gen", ns, "1")
    obj = wait_rotated(cluster, "gen", ns, after=token, timeout=30)
    assert obj["status"]["rotation"]["trigger"] == "rotate-now"
    token = obj["status"]["rotation"]["token"]
    time.sleep(3)
    assert present(get(cluster, "ms", "gen", ns))["status"]["rotation"]["token"] == token
    reasons = event_reasons(cluster, "gen", ns)
    for reason in ("RotationStarted", "RotationStep", "RotationSucceeded"):
        assert reason in reasons
    described = cluster.kubectl("describe", "ms", "gen", "-n", ns).stdout
    assert "RotationSucceeded" in described


@pytest.mark.db
@pytest.mark.parametrize("server_name", ["pg_server", "mariadb_server"])
@pytest.mark.parametrize("strategy", ["single-user", "alternating-users"])
def test_database_rotation_keeps_consumers_working(
    cluster: Any,
    operator: Any,
    request: pytest.FixtureRequest,
    server_name: str,
    strategy: str,
) -> None:
    server = request.getfixturevalue(server_name)
    ns = new_namespace(cluster)
    user, password, dbname = create_db_managed_secret(cluster, ns, "app-db", server, strategy)
    held = server.connect(
        user,
        password,
        **({"dbname": dbname} if server.kind == "postgresql" else {"database": dbname}),
    )
    seen: list[dict[str, str]] = [{"username": user, "password": password}]
    token = None
    for _ in range(3):
        obj = wait_rotated(cluster, "app-db", ns, after=token)
        token = obj["status"]["rotation"]["token"]
        creds = projected_creds(cluster, "app-db", ns)
        assert reads_42(server, creds["username"], creds["password"], dbname)
        labels = store_labels(cluster, operator, "app-db", ns)
        assert labels["AWSCURRENT"]["password"] == creds["password"]
        assert labels["AWSPREVIOUS"]["password"] == seen[-1]["password"]  # previous kept
        assert "AWSPENDING" not in labels
        if strategy == "alternating-users":
            # The users take turns; what apps held before still logs in.
            assert creds["username"] != seen[-1]["username"]
            assert reads_42(server, seen[-1]["username"], seen[-1]["password"], dbname)
            if len(seen) >= 2:  # two rotations ago: that user's password has changed
                assert not server.can_login(
                    seen[-2]["username"],
                    seen[-2]["password"],
                    **({"dbname": dbname} if server.kind == "postgresql" else {"database": dbname}),
                )
        else:
            assert creds["username"] == user
            assert not server.can_login(
                user,
                seen[-1]["password"],
                **({"dbname": dbname} if server.kind == "postgresql" else {"database": dbname}),
            )
        seen.append({"username": creds["username"], "password": creds["password"]})
        # The connection opened with the first credentials keeps working.
        if server.kind == "postgresql":
            assert held.execute("SELECT 1").fetchone() == (1,)
        else:
            with held.cursor() as cur:
                cur.execute("SELECT 1")
                assert cur.fetchone() == (1,)
        annotate_rotate_now(cluster, "app-db", ns, token)
    held.close()
    assert condition(obj, "TLSVerified") is None  # verified: nothing to warn about
    # No password reached the database server's log.
    log = server.log_text()
    for creds in seen:
        assert creds["password"] not in log


@pytest.mark.db
def test_database_unreachable_then_back(cluster: Any, operator: Any, pg_server: Any) -> None:  # noqa: F811
    ns = new_namespace(cluster)
    user, password, dbname = create_db_managed_secret(
        cluster, ns, "down", pg_server, "single-user", rotation={"rotateImmediately": False}
    )
    wait_for(lambda: ready(cluster, "down", ns))
    with pg_server.stopped():
        annotate_rotate_now(cluster, "down", ns, "now")
        obj = wait_for(
            lambda: (
                (o := get(cluster, "ms", "down", ns))
                and (c := condition(o, "RotationFailed"))
                and c["status"] == "True"
                and o
            ),
            what="RotationFailed",
            timeout=60,
        )
        cond = present(condition(obj, "RotationFailed"))
        assert cond["reason"] == "RotationFailed"
        assert password not in json.dumps(obj)
        rotation = obj["status"]["rotation"]
        assert rotation["attempts"] >= 1 and rotation["nextAttemptAt"]
        # AWSCURRENT untouched; the projected Secret still holds the initial credentials.
        assert projected_creds(cluster, "down", ns)["password"] == password
        assert "RotationFailed" in event_reasons(cluster, "down", ns)
        time.sleep(4)
        attempts = present(get(cluster, "ms", "down", ns))["status"]["rotation"]["attempts"]
        assert attempts >= 2  # retried with backoff
    obj = wait_rotated(cluster, "down", ns, timeout=60)
    creds = projected_creds(cluster, "down", ns)
    assert creds["password"] != password and reads_42(pg_server, user, creds["password"], dbname)
    assert present(condition(obj, "RotationFailed"))["status"] == "False"


@pytest.mark.db
def test_tls_verifies_by_default_and_opting_out_warns(
    cluster: Any,
    operator: Any,
    pg_server: Any,  # noqa: F811
) -> None:
    ns = new_namespace(cluster)
    # no tls: verify-full against the system CAs, which did not sign the fixture's certificate
    create_db_managed_secret(cluster, ns, "strict", pg_server, "single-user", tls=None)
    obj = wait_for(
        lambda: (
            (o := get(cluster, "ms", "strict", ns))
            and (c := condition(o, "RotationFailed"))
            and c["status"] == "True"
            and o
        ),
        what="RotationFailed",
        timeout=60,
    )
    assert "certificate" in present(condition(obj, "RotationFailed"))["message"]
    assert condition(obj, "TLSVerified") is None
    # the explicit opt-out works, and says what it costs
    user, _, dbname = create_db_managed_secret(
        cluster, ns, "lax", pg_server, "single-user", tls={"mode": "require"}
    )
    obj = wait_rotated(cluster, "lax", ns, timeout=60)
    creds = projected_creds(cluster, "lax", ns)
    assert reads_42(pg_server, user, creds["password"], dbname)
    warned = condition(obj, "TLSVerified")
    assert warned is not None and (warned["status"], warned["reason"]) == (
        "False",
        "TLSNotVerified",
    )
    assert "require" in warned["message"]
    found = [e for e in events(cluster, "lax", ns) if e["reason"] == "TLSNotVerified"]
    assert found and found[0]["type"] == "Warning"
    assert creds["password"] not in json.dumps(obj) + json.dumps(found)


@pytest.mark.db
def test_wrong_master_credentials(cluster: Any, operator: Any, mariadb_server: Any) -> None:  # noqa: F811
    ns = new_namespace(cluster)
    user, password, dbname = create_db_managed_secret(
        cluster,
        ns,
        "badmaster",
        mariadb_server,
        "alternating-users",
        master=(mariadb_server.admin_user, "wrong-master-password"),
    )
    obj = wait_for(
        lambda: (
            (o := get(cluster, "ms", "badmaster", ns))
            and (c := condition(o, "RotationFailed"))
            and c["status"] == "True"
            and o
        ),
        what="RotationFailed",
        timeout=60,
    )
    assert "refused" in present(condition(obj, "RotationFailed"))["message"]
    assert "wrong-master-password" not in json.dumps(obj)
    assert projected_creds(cluster, "badmaster", ns)["password"] == password
    assert reads_42(mariadb_server, user, password, dbname)
    # Fixing the master Secret lets the retried rotation finish.
    patch = {"stringData": {"password": mariadb_server.admin_password}}
    cluster.kubectl(
        "patch", "secret", "badmaster-master", "-n", ns, "--type=merge", "-p", json.dumps(patch)
    )
    wait_rotated(cluster, "badmaster", ns, timeout=60)
    creds = projected_creds(cluster, "badmaster", ns)
    assert creds["username"] == f"{user}_clone"
    assert reads_42(mariadb_server, creds["username"], creds["password"], dbname)


def test_cli_rotate_secret(cluster: Any, operator: Any) -> None:
    import subprocess

    ns = new_namespace(cluster)
    spec = {**GENERATED, "name": "prod/cli-rotated", "rotation": {"generated": {}}}
    apply(cluster, managed_secret("clirot", ns, spec))
    first = wait_for(lambda: ready(cluster, "clirot", ns))["status"]["currentVersionId"]
    before = secret_data(get(cluster, "secret", "clirot", ns) or {})["password"]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kustos.cli.main",
            "rotate-secret",
            "--secret-id",
            "prod/cli-rotated",
            "--namespace",
            ns,
        ],
        env=operator.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["Name"] == "prod/cli-rotated" and answer["VersionId"] != first
    obj = wait_rotated(cluster, "clirot", ns, timeout=30)
    assert obj["status"]["currentVersionId"] == answer["VersionId"]
    assert obj["status"]["rotation"]["trigger"] == "rotate-now"
    assert secret_data(get(cluster, "secret", "clirot", ns) or {})["password"] != before
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "kustos.cli.main",
            "rotate-secret",
            "--secret-id",
            "nope",
            "--namespace",
            ns,
        ],
        env=operator.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert missing.returncode != 0 and "ResourceNotFoundException" in missing.stderr
