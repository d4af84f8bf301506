"""Crash safety: the operator SIGKILLs itself at every rotation step boundary and in the
middle of setSecret (a step hook injected by tests/crash_operator.py); started again without
the hook, it converges:
the database accepts exactly the credentials the store labels AWSCURRENT (and AWSPREVIOUS
for alternating users), the projected Secret's credentials log in, no version is lost and
no rotation is stuck."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from tests.crash_operator import reached
from tests.db_fixture import mariadb_server, pg_server  # noqa: F401
from tests.kube_helpers import new_namespace, wait_for
from tests.rotation_helpers import (
    FAST,
    create_db_managed_secret,
    db_kw,
    projected_creds,
    reads_42,
    store_labels,
    wait_rotated,
)

pytestmark = [pytest.mark.cluster, pytest.mark.db, pytest.mark.slow]
#: The longest module (two operator starts per case): one unit of parallel work per strategy.
PARALLEL_BY = "strategy"

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
POINTS = [f"{step}:{when}" for step in STEPS for when in ("before", "after")]
POINTS.insert(2, "setSecret:mid")

CASES = [
    *[("pg_server", "single-user", p) for p in POINTS],
    *[("pg_server", "alternating-users", p) for p in POINTS],
    *[
        ("mariadb_server", s, p)
        for s in ("single-user", "alternating-users")
        for p in ("setSecret:mid", "setSecret:after", "finishSecret:before")
    ],
]


@pytest.fixture(scope="module")
def cluster(kube_cluster: Any) -> Any:
    kube_cluster.apply_crds()
    return kube_cluster


@pytest.mark.parametrize(("server_name", "strategy", "point"), CASES)
def test_crash_and_resume(
    cluster: Any,
    operator_factory: Any,
    request: pytest.FixtureRequest,
    server_name: str,
    strategy: str,
    point: str,
) -> None:
    server = request.getfixturevalue(server_name)
    runner = operator_factory(**FAST)
    runner.entry = ["-m", "tests.crash_operator", point]
    runner.start()
    ns = new_namespace(cluster)
    user, password, dbname = create_db_managed_secret(cluster, ns, "crashy", server, strategy)

    wait_for(lambda: runner.proc.poll() is not None, timeout=60, what=f"the crash at {point}")
    assert runner.proc.returncode == -signal.SIGKILL
    assert reached(point) in runner.log()

    runner.entry = ["-m", "kustos.cli.main"]
    runner.start()
    obj = wait_rotated(cluster, "crashy", ns, timeout=90)
    assert obj["status"]["rotation"]["attempts"] == 0  # resumed, not failed

    labels = store_labels(cluster, runner, "crashy", ns)
    current, previous = labels["AWSCURRENT"], labels["AWSPREVIOUS"]
    assert "AWSPENDING" not in labels
    assert labels["_count"]["versions"] == 2  # the initial one and the rotated one
    assert previous["password"] == password and previous["username"] == user
    assert current["password"] != password
    # The database accepts exactly what the store labels.
    assert reads_42(server, current["username"], current["password"], dbname)
    creds = projected_creds(cluster, "crashy", ns)
    assert (creds["username"], creds["password"]) == (current["username"], current["password"])
    if strategy == "alternating-users":
        assert current["username"] == f"{user}_clone"
        assert reads_42(server, user, password, dbname)  # AWSPREVIOUS still logs in
    else:
        assert current["username"] == user
        assert not server.can_login(user, password, **db_kw(server, dbname))
    assert password not in runner.log() and current["password"] not in runner.log()
