"""PolicyIndex renews its listing in the background before the bound, so requests do not
wait for the list; at the bound (ttl) a request renews it itself and fails closed."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from kustos.services.access.policies import PolicyIndex


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def policy(name: str, rv: str = "1") -> dict[str, Any]:
    return {
        "kind": "SecretAccessPolicy",
        "metadata": {
            "name": name,
            "namespace": "team",
            "uid": f"uid-{name}",
            "resourceVersion": rv,
        },
        "spec": {"subjects": [], "policy": {"Version": "2012-10-17", "Statement": []}},
    }


class Source:
    """The apiserver's listing; `hold` makes a list wait until released."""

    def __init__(self) -> None:
        self.items = [policy("a")]
        self.calls = 0
        self.hold = threading.Event()
        self.hold.set()
        self.listed = threading.Event()
        self.fail = False

    def __call__(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        self.calls += 1
        items = list(self.items)
        self.listed.set()
        assert self.hold.wait(30)
        if self.fail:
            raise ConnectionError("apiserver down")
        return items, []


def names(index: PolicyIndex) -> list[str]:
    return [b.name for b in index.policies()]


def test_a_renewal_before_the_bound_does_not_hold_requests() -> None:
    clock, source = Clock(), Source()
    index = PolicyIndex(source, ttl=3.0, clock=clock, background=True)
    assert names(index) == ["a"] and source.calls == 1
    clock.now = 1.0
    assert names(index) == ["a"] and source.calls == 1  # fresh: no list
    source.items = [policy("a"), policy("b")]
    source.hold.clear()  # the apiserver is slow to answer
    source.listed.clear()
    clock.now = 2.1
    assert names(index) == ["a"]  # answered at once from the listing in force
    assert source.listed.wait(30) and source.calls == 2  # one renewal, in the background
    assert names(index) == ["a"] and source.calls == 2  # not a second one meanwhile
    source.hold.set()
    for _ in range(3000):
        if names(index) == ["a", "b"]:
            break
        threading.Event().wait(0.01)
    assert names(index) == ["a", "b"]


def test_at_the_bound_a_request_renews_and_fails_closed() -> None:
    clock, source = Clock(), Source()
    index = PolicyIndex(source, ttl=3.0, clock=clock, background=True)
    names(index)
    source.fail = True
    clock.now = 2.5
    names(index)  # starts a background renewal, which fails: the listing in force stays
    for _ in range(3000):
        if source.calls == 2 and not index._renewing:
            break
        threading.Event().wait(0.01)
    assert names(index) == ["a"]
    clock.now = 3.0  # the bound: served stale no longer
    with pytest.raises(ConnectionError):
        index.policies()


def test_without_background_every_renewal_is_on_the_request_path() -> None:
    clock, source = Clock(), Source()
    index = PolicyIndex(source, ttl=3.0, clock=clock)
    names(index)
    clock.now = 2.9
    names(index)
    assert source.calls == 1
    source.items = [policy("c")]
    clock.now = 3.0
    assert names(index) == ["c"] and source.calls == 2


def test_an_older_listing_never_replaces_a_newer_one() -> None:
    clock = Clock()
    slow = threading.Event()
    calls: list[str] = []
    items = [policy("a")]

    def source() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        seen = list(items)
        calls.append(seen[0]["metadata"]["name"])
        if len(calls) == 2:  # the background renewal: answers only when released
            assert slow.wait(30)
        return seen, []

    index = PolicyIndex(source, ttl=3.0, clock=clock, background=True)
    names(index)
    clock.now = 2.5
    names(index)  # a slow background list starts at 2.5 and sees only "a"
    for _ in range(3000):
        if len(calls) == 2:
            break
        threading.Event().wait(0.01)
    items[:] = [policy("d")]
    clock.now = 4.0
    assert names(index) == ["d"]  # at the bound: listed on the request path, at 4.0
    slow.set()  # now the listing from 2.5 arrives
    for _ in range(3000):
        if not index._renewing:
            break
        threading.Event().wait(0.01)
    assert names(index) == ["d"]  # the background listing (from 2.5) was not installed
