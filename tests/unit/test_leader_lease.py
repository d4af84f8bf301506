"""Leader election and fencing with fakes: an in-memory Lease API with optimistic concurrency
and a hand-driven clock (the real apiserver: tests/integration/test_leader_election.py)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kustos.errors import FencedError
from kustos.kube.lease import LeaseElector
from kustos.models.fencing import FenceToken, fenced
from kustos.models.records import SecretRecord
from kustos.store.sql import SqlStore


class FakeLeases:
    """read/create/replace of one namespace's Leases, resourceVersion checked like the
    apiserver; `down` makes every call fail as an unreachable apiserver would."""

    def __init__(self) -> None:
        self.items: dict[str, client.V1Lease] = {}
        self.rv = 0
        self.down = False

    def _gate(self) -> None:
        if self.down:
            raise ApiException(status=503)

    def read_namespaced_lease(self, name: str, namespace: str) -> client.V1Lease:
        self._gate()
        if name not in self.items:
            raise ApiException(status=404)
        return copy.deepcopy(self.items[name])

    def create_namespaced_lease(self, namespace: str, body: client.V1Lease) -> client.V1Lease:
        self._gate()
        if body.metadata.name in self.items:
            raise ApiException(status=409)
        self.rv += 1
        body = copy.deepcopy(body)
        body.metadata.resource_version = str(self.rv)
        self.items[body.metadata.name] = body
        return body

    def replace_namespaced_lease(
        self, name: str, namespace: str, body: client.V1Lease
    ) -> client.V1Lease:
        self._gate()
        if self.items[name].metadata.resource_version != body.metadata.resource_version:
            raise ApiException(status=409)
        self.rv += 1
        body = copy.deepcopy(body)
        body.metadata.resource_version = str(self.rv)
        self.items[name] = body
        return body

    def holder(self) -> str | None:
        spec = self.items["kustos-operator"].spec
        return str(spec.holder_identity) if spec.holder_identity else None


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class Replica:
    def __init__(self, leases: FakeLeases, clock: Clock, name: str, floor: int = -1) -> None:
        self.events: list[str] = []
        self.elector = LeaseElector(
            leases,
            "kustos-system",
            "kustos-operator",
            name,
            on_started=lambda: self.events.append("started"),
            on_stopped=lambda: self.events.append("stopped"),
            floor=lambda: floor,
            lease=6.0,
            renew_deadline=4.0,
            retry=1.0,
            clock=clock,
            now=lambda: datetime(2026, 12, 1, tzinfo=UTC),
        )


@pytest.fixture
def world() -> tuple[FakeLeases, Clock]:
    return FakeLeases(), Clock()


def test_first_replica_leads_the_second_waits_for_the_claim_to_lapse(
    world: tuple[FakeLeases, Clock],
) -> None:
    leases, clock = world
    a, b = Replica(leases, clock, "a"), Replica(leases, clock, "b")
    a.elector.step()
    b.elector.step()
    assert a.events == ["started"] and b.events == []
    assert a.elector.check() == FenceToken(0, "a")
    with pytest.raises(FencedError):
        b.elector.check()
    # a renews every second: b never takes over, however long it waits.
    for _ in range(20):
        clock.t += 1.0
        a.elector.step()
        b.elector.step()
    assert leases.holder() == "a" and b.events == []


def test_a_dead_leader_is_replaced_after_the_lease_with_a_higher_term(
    world: tuple[FakeLeases, Clock],
) -> None:
    leases, clock = world
    a, b = Replica(leases, clock, "a"), Replica(leases, clock, "b")
    a.elector.step()
    b.elector.step()  # b observes a's record now
    clock.t += 5.9  # a is gone (no renewals); not yet a whole lease since b saw a change
    b.elector.step()
    assert b.events == [] and leases.holder() == "a"
    clock.t += 0.2
    b.elector.step()
    assert b.events == ["started"] and leases.holder() == "b"
    assert b.elector.check() == FenceToken(1, "b")
    # a comes back (e.g. resumed after a pause): its own deadline has passed, and its next
    # look at the Lease deposes it for good.
    with pytest.raises(FencedError):
        a.elector.check()
    a.elector.step()
    assert a.events == ["started", "stopped"]
    with pytest.raises(FencedError):
        a.elector.check()


def test_a_leader_that_cannot_renew_stops_before_anyone_may_take_over(
    world: tuple[FakeLeases, Clock],
) -> None:
    leases, clock = world
    a = Replica(leases, clock, "a")
    a.elector.step()
    leases.down = True
    clock.t += 3.9
    a.elector.step()
    assert a.elector.check().holder == "a"  # within the renew deadline
    clock.t += 0.2  # 4.1 s since the last renewal: past the deadline, short of the lease
    with pytest.raises(FencedError):
        a.elector.check()
    a.elector.step()
    assert a.events == ["started", "stopped"]


def test_release_on_stop_hands_over_at_once(world: tuple[FakeLeases, Clock]) -> None:
    leases, clock = world
    a, b = Replica(leases, clock, "a"), Replica(leases, clock, "b")
    a.elector.step()
    b.elector.step()
    a.elector.stop()
    assert leases.holder() is None
    with pytest.raises(FencedError):
        a.elector.check()
    b.elector.step()  # same instant: no waiting for a lease to lapse
    assert b.events == ["started"] and b.elector.check().term == 1


def test_the_term_never_falls_below_what_the_store_has_seen(
    world: tuple[FakeLeases, Clock],
) -> None:
    leases, clock = world
    a = Replica(leases, clock, "a", floor=7)  # e.g. the Lease was deleted and recreated
    a.elector.step()
    assert a.elector.check().term == 8


def test_two_replicas_racing_for_a_released_lease_only_one_wins(
    world: tuple[FakeLeases, Clock],
) -> None:
    leases, clock = world
    a, b, c = (Replica(leases, clock, n) for n in "abc")
    a.elector.step()
    a.elector.stop()
    original = leases.replace_namespaced_lease

    def b_first(name: str, namespace: str, body: client.V1Lease) -> client.V1Lease:
        leases.replace_namespaced_lease = original  # type: ignore[method-assign]  # unpatched
        b.elector.step()  # b writes between c's read and c's write
        return original(name, namespace, body)

    leases.replace_namespaced_lease = b_first  # type: ignore[method-assign]  # patched for this test
    c.elector.step()
    assert b.events == ["started"] and c.events == []
    assert leases.holder() == "b"


def test_timings_must_be_ordered() -> None:
    with pytest.raises(ValueError, match="retry < renew_deadline < lease"):
        LeaseElector(
            FakeLeases(),
            "ns",
            "l",
            "x",
            on_started=lambda: None,
            on_stopped=lambda: None,
            lease=4.0,
            renew_deadline=4.0,
            retry=1.0,
        )


# -- the store's half: the term is checked inside the write transaction ----------------


class Token:
    def __init__(self, term: int, valid: bool = True) -> None:
        self.term, self.valid = term, valid

    def check(self) -> FenceToken:
        if not self.valid:
            raise FencedError("not the leader")
        return FenceToken(self.term, f"replica-{self.term}")


def _record(name: str) -> SecretRecord:
    now = datetime.now(UTC)
    return SecretRecord(
        arn=f"arn:kustos:secretsmanager:test:ns:secret:{name}-abcdef",
        namespace="ns",
        name=name,
        created_at=now,
        updated_at=now,
    )


def test_a_deposed_leader_cannot_write_once_its_successor_has(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 's.db'}")
    try:
        assert store.leader_term() == -1
        with fenced(Token(1)):
            store.create_secret(_record("one"))
        with fenced(Token(2)):  # the successor writes
            store.create_secret(_record("two"))
        assert store.leader_term() == 2
        with fenced(Token(1)), pytest.raises(FencedError, match="newer operator leader"):
            store.create_secret(_record("late"))
        assert store.get_secret("ns", "late") is None  # nothing of it landed
        with fenced(Token(3, valid=False)), pytest.raises(FencedError):
            store.create_secret(_record("lost"))  # its own fence failed: no transaction
        assert store.get_secret("ns", "lost") is None
        assert store.leader_term() == 2
        store.create_secret(_record("api"))  # unfenced (API, CLI): every replica writes
        assert store.get_secret("ns", "api") is not None
    finally:
        store.close()


def test_kubernetes_writes_check_the_fence_before_sending() -> None:
    from kustos.kube.secrets import SecretGateway

    sent: list[str] = []

    class Core:
        def create_namespaced_secret(self, *_: Any, **__: Any) -> Any:
            sent.append("create")
            raise AssertionError("must not be sent")

    gateway = SecretGateway.__new__(SecretGateway)
    gateway._core = Core()
    with fenced(Token(1, valid=False)), pytest.raises(FencedError):
        gateway.create("ns", {"metadata": {"name": "s"}})
    assert sent == []
