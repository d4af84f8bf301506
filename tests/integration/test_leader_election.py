"""Operator replicas on the real apiserver: one leader on the Lease, the other takes over when
it is SIGKILLed (failover measured) or stops (handover on release), and a leader killed in
the middle of a rotation leaves the rotation to its successor, which completes it exactly
once (the crash matrix of test_rotation_crash.py, with a second replica instead of a
restart).

Two `kustos run` processes share one namespace (Lease, keyring) and one store.
"""

from __future__ import annotations

import json
import re
import signal
import time
from typing import Any

import pytest
from tests.crash_operator import reached
from tests.db_fixture import pg_server  # noqa: F401
from tests.kube_helpers import apply, get, managed_secret, new_namespace, wait_for
from tests.operator_fixture import OperatorRunner
from tests.rotation_helpers import (
    FAST,
    create_db_managed_secret,
    reads_42,
    store_labels,
    wait_rotated,
)

# Three operator starts and a rotation on a loaded 2-CPU machine can take minutes.
pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]

GENERATE = {
    "generate": {"passwordLength": 24, "excludePunctuation": True, "keys": ["password"]},
    "target": {"type": "kubernetes.io/basic-auth", "staticData": {"username": "app"}},
}
LEADS = re.compile(r"leader election: (\S+) leads \(term (\d+)\)")
#: The defaults (kustos.config): lease 6 s, renew deadline 4 s, retry 1 s.
LEASE_S, RETRY_S = 6.0, 1.0


@pytest.fixture(scope="module")
def cluster(kube_cluster: Any) -> Any:
    kube_cluster.apply_crds()
    return kube_cluster


@pytest.fixture
def pair(cluster: Any, operator_factory: Any) -> tuple[OperatorRunner, OperatorRunner]:
    """Two replicas of one installation: same namespace, same store."""
    first: OperatorRunner = operator_factory(**FAST)
    second: OperatorRunner = operator_factory(
        **FAST, KUSTOS_STORE_URL=f"sqlite:///{first.store_path}"
    )
    second.namespace = first.namespace
    return first, second


def leads(runner: OperatorRunner) -> tuple[str, int] | None:
    found = LEADS.findall(runner.log())
    return (found[-1][0], int(found[-1][1])) if found else None


def lease(cluster: Any, ns: str) -> dict[str, Any]:
    obj = get(cluster, "lease", "kustos-operator", ns)
    assert obj is not None
    found: dict[str, Any] = obj["spec"]
    return found


def projected(cluster: Any, name: str, ns: str) -> dict[str, Any] | None:
    return get(cluster, "secret", name, ns)


def test_the_follower_takes_over_when_the_leader_is_killed(
    cluster: Any,
    pair: tuple[OperatorRunner, OperatorRunner],
) -> None:
    a, b = pair
    a.start(timeout=180)
    a_id, a_term = wait_for(lambda: leads(a), timeout=30, what="a leads")
    b.start(timeout=180)
    ns = new_namespace(cluster)
    apply(cluster, managed_secret("before", ns, GENERATE))
    wait_for(lambda: projected(cluster, "before", ns), timeout=60, what="a projects")
    assert leads(b) is None  # a follower does nothing
    assert lease(cluster, a.namespace)["holderIdentity"] == a_id

    assert a.proc is not None
    a.proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    a.proc.wait()
    b_id, b_term = wait_for(lambda: leads(b), timeout=30, what="b takes over")
    failover = time.monotonic() - killed
    apply(cluster, managed_secret("after", ns, GENERATE))
    wait_for(lambda: projected(cluster, "after", ns), timeout=60, what="b projects")
    served = time.monotonic() - killed
    print(
        f"\nFAILOVER leader SIGKILLed -> follower leads: {failover:.1f} s; "
        f"-> a new ManagedSecret projected: {served:.1f} s"
    )
    # Not before the claim lapsed (counted from b's last look at a renewal, up to one retry
    # before the kill), and within it plus two retries (and slack for a loaded machine).
    assert LEASE_S - RETRY_S - 0.5 <= failover <= LEASE_S + 2 * RETRY_S + 3
    assert b_term == a_term + 1 and b_id != a_id
    spec = lease(cluster, a.namespace)
    assert spec["holderIdentity"] == b_id and spec["leaseTransitions"] == b_term

    # A graceful stop releases the Lease: the restarted a takes over within a retry or two.
    a.start(timeout=180)
    assert b.proc is not None
    b.proc.send_signal(signal.SIGTERM)
    stopped = time.monotonic()
    wait_for(lambda: (leads(a) or ("", -1))[1] == b_term + 1, timeout=30, what="a leads again")
    handover = time.monotonic() - stopped
    print(f"HANDOVER SIGTERM to the leader -> follower leads: {handover:.1f} s")
    b.stop()
    assert handover < LEASE_S  # did not wait for the claim to lapse
    assert "released the Lease" in b.log()


@pytest.mark.db
@pytest.mark.slow
def test_leader_killed_mid_rotation_the_successor_completes_it_exactly_once(
    cluster: Any,
    pair: tuple[OperatorRunner, OperatorRunner],
    pg_server: Any,  # noqa: F811
) -> None:
    a, b = pair
    a.entry = ["-m", "tests.crash_operator", "setSecret:mid"]  # a SIGKILLs itself there
    a.start(timeout=180)
    wait_for(lambda: leads(a), timeout=30, what="a leads")
    b.start(timeout=180)
    ns = new_namespace(cluster)
    user, password, dbname = create_db_managed_secret(
        cluster, ns, "crashy", pg_server, "single-user"
    )
    proc = a.proc  # set by start(), which nothing calls meanwhile
    assert proc is not None
    wait_for(lambda: proc.poll() is not None, timeout=60, what="the crash in setSecret")
    assert proc.returncode == -signal.SIGKILL
    assert reached("setSecret:mid") in a.log()

    obj = wait_rotated(cluster, "crashy", ns, timeout=90)
    assert leads(b) is not None
    assert obj["status"]["rotation"]["attempts"] == 0  # resumed, not failed and retried
    labels = store_labels(cluster, a, "crashy", ns)
    current, previous = labels["AWSCURRENT"], labels["AWSPREVIOUS"]
    assert "AWSPENDING" not in labels
    assert labels["_count"]["versions"] == 2  # the initial one and one rotated: none lost,
    assert previous["password"] == password  # none duplicated
    assert current["username"] == user and current["password"] != password
    assert reads_42(pg_server, user, current["password"], dbname)
    assert not pg_server.can_login(user, password, dbname=dbname)
    token = obj["status"]["rotation"]["token"]
    assert json.dumps(obj["status"]).count(token) >= 1
    assert current["password"] not in a.log() + b.log()
