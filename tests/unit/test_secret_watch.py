"""The watched cache of projected Secrets: which events are news, the paged LIST then WATCH
loop (over a fake CoreV1Api), reads answered from the cache without a request, a refused
watch falling back to reads by name, and the runtime turning news into `PROJECTED_CHANGED`
for the owner only."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException
from tests.unit.fakes import managed

from kustos.config import Settings
from kustos.kube.secret_watch import SELECTOR, SecretCache, SecretWatch, WatchedSecretGateway
from kustos.operator.runtime import OperatorRuntime
from kustos.services.controller.controller import Outcome, Trigger

Obj = dict[str, Any]


def secret(name: str, rv: int, owner: str = "a", uid: str = "uid-a", value: str = "eA==") -> Obj:
    return {
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "resourceVersion": str(rv),
            "managedFields": [{"manager": "kubectl"}],
            "labels": {"app.kubernetes.io/managed-by": "kustos"},
            "ownerReferences": [
                {"kind": "ManagedSecret", "name": owner, "uid": uid, "controller": True}
            ],
        },
        "data": {"password": value},
    }


def test_only_someone_elses_newer_change_is_news() -> None:
    cache = SecretCache()
    assert cache.get("team-a", "s") == (False, None)  # not synced: ask the API
    assert cache.replace_all("team-a", [secret("s", 10)]) == []  # the first listing: no news
    known, body = cache.get("team-a", "s")
    assert known and body is not None and "managedFields" not in body["metadata"]
    body["data"]["password"] = "Y2hhbmdlZA=="  # a reader's change stays its own
    assert cache.get("team-a", "s")[1]["data"] == {"password": "eA=="}  # type: ignore[index]
    cache.remember("team-a", secret("s", 12))  # our own write...
    assert not cache.apply("team-a", "MODIFIED", secret("s", 12))  # ...its echo is no news
    assert not cache.apply("team-a", "MODIFIED", secret("s", 11))  # older than our write
    assert cache.apply("team-a", "MODIFIED", secret("s", 13, value="ZWRpdA=="))  # an edit
    assert cache.get("team-a", "s")[1]["data"] == {"password": "ZWRpdA=="}  # type: ignore[index]
    assert cache.apply("team-a", "DELETED", secret("s", 14))
    assert cache.get("team-a", "s") == (True, None)  # known to be absent: no GET
    assert not cache.apply("team-a", "MODIFIED", secret("s", 13))  # cannot come back


def test_a_relist_after_a_gap_reports_what_changed_meanwhile() -> None:
    cache = SecretCache()
    cache.replace_all("team-a", [secret("kept", 1), secret("edited", 2), secret("gone", 3)])
    news = cache.replace_all("team-a", [secret("kept", 1), secret("edited", 7)])
    assert sorted((o["metadata"]["name"], deleted) for o, deleted in news) == [
        ("edited", False),
        ("gone", True),
    ]
    cache.unsync("team-a")
    assert cache.get("team-a", "kept") == (False, None)


class FakeStream:
    """A watch response: lines fed by the test, ended by `close`."""

    def __init__(self) -> None:
        self.lines: queue.Queue[bytes | None] = queue.Queue()

    def stream(self, amt: int, decode_content: bool) -> Iterator[bytes]:
        while (line := self.lines.get()) is not None:
            yield line

    def close(self) -> None:
        self.lines.put(None)

    def release_conn(self) -> None:
        pass

    def event(self, kind: str, obj: Obj) -> None:
        self.lines.put(json.dumps({"type": kind, "object": obj}).encode() + b"\n")


class FakeCore:
    def __init__(self, pages: list[list[Obj]], forbidden: bool = False) -> None:
        self.pages, self.forbidden = pages, forbidden
        self.calls: list[dict[str, Any]] = []
        self.streams: queue.Queue[FakeStream] = queue.Queue()
        self.reads = 0

    def list_namespaced_secret(self, namespace: str, **kw: Any) -> Any:
        self.calls.append(kw)
        assert kw["label_selector"] == SELECTOR
        if self.forbidden:
            raise ApiException(status=403, reason="Forbidden")
        if kw.get("watch"):
            stream = FakeStream()
            self.streams.put(stream)
            return stream
        index = int(kw.get("_continue") or 0)
        meta: Obj = {"resourceVersion": "100"}
        if index + 1 < len(self.pages):
            meta["continue"] = str(index + 1)
        page = {"items": self.pages[index], "metadata": meta}
        return type("Resp", (), {"data": json.dumps(page)})()

    def read_namespaced_secret(self, name: str, namespace: str, **kw: Any) -> Any:
        self.reads += 1
        return type("Resp", (), {"data": json.dumps(secret(name, 1))})()


def watch_over(core: FakeCore, **kw: Any) -> SecretWatch:
    watch = SecretWatch(client.ApiClient(), page_size=1, **kw)
    watch._core = core  # a fake CoreV1Api
    return watch


def test_the_watch_lists_in_pages_then_reports_edits_and_reads_cost_nothing() -> None:
    core = FakeCore([[secret("s1", 5)], [secret("s2", 6, owner="b", uid="uid-b")]])
    watch = watch_over(core)
    news: queue.Queue[tuple[str, bool]] = queue.Queue()
    watch.listen(lambda ns, obj, deleted: news.put((obj["metadata"]["name"], deleted)))
    gateway = WatchedSecretGateway(client.ApiClient(), watch)
    gateway._core = core
    watch.watch("team-a")  # before start: remembered, started with it
    watch.start()
    try:
        stream = core.streams.get(timeout=30)
        assert [c.get("_continue") for c in core.calls[:2]] == [None, "1"]  # paged
        assert all(c["limit"] == 1 for c in core.calls[:2])
        assert core.calls[2]["resource_version"] == "100"  # watched from the listing
        assert gateway.get("team-a", "s2") is not None
        assert gateway.get("team-a", "missing") is None
        assert core.reads == 0  # answered by the cache
        stream.event("MODIFIED", secret("s1", 5))  # what the listing had: no news
        stream.event("MODIFIED", secret("s1", 101, value="ZWRpdA=="))
        stream.event("DELETED", secret("s2", 102, owner="b", uid="uid-b"))
        assert news.get(timeout=30) == ("s1", False)
        assert news.get(timeout=30) == ("s2", True)
        assert news.empty()
    finally:
        watch.stop()


def test_a_refused_watch_falls_back_to_reads_by_name() -> None:
    core = FakeCore([[]], forbidden=True)
    watch = watch_over(core, forbidden_retry=3600)
    gateway = WatchedSecretGateway(client.ApiClient(), watch)
    gateway._core = core
    watch.start()
    watch.watch("team-a")
    try:
        assert gateway.get("team-a", "s") is not None  # waits for the refusal, then a GET
        assert core.reads == 1
        assert watch.forbidden() == ["team-a"]
    finally:
        watch.stop()


class FakeWatch:
    def __init__(self) -> None:
        self.listeners: list[Any] = []
        self.namespaces: list[str] = []

    def listen(self, listener: Any) -> None:
        self.listeners.append(listener)

    def watch(self, namespace: str) -> None:
        self.namespaces.append(namespace)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


@pytest.fixture
def runtime() -> Iterator[tuple[OperatorRuntime, FakeWatch, list[tuple[str, frozenset[Trigger]]]]]:
    calls: list[tuple[str, frozenset[Trigger]]] = []
    done = threading.Condition()

    class Recorder:
        def handle(self, body: Obj, triggers: frozenset[Trigger]) -> Outcome:
            with done:
                calls.append((body["metadata"]["name"], frozenset(triggers)))
                done.notify_all()
            return Outcome()

    fake = FakeWatch()
    store = type("Store", (), {"last_change": lambda self: 0, "changes_since": lambda *a: []})()
    services: Any = type("Services", (), {"managed": None, "store": store, "secret_watch": fake})()
    settings = Settings(
        resync_seconds=3600, drift_check_seconds=3600, orphan_sweep_seconds=3600, workers=2
    )
    rt = OperatorRuntime(services, settings)
    rt.controller = Recorder()  # type: ignore[assignment]
    rt.start()
    yield rt, fake, calls
    rt.stop()


def test_someone_elses_edit_reprojects_the_owner_at_once(runtime: Any) -> None:
    rt, fake, calls = runtime
    rt.observe(None, managed("a", {}))
    rt.observe(None, managed("b", {}, namespace="team-b"))
    assert fake.namespaces == ["team-a", "team-b"]  # one watch per namespace
    assert rt.queue.wait_idle(30)
    calls.clear()
    (listener,) = fake.listeners
    listener("team-a", secret("s", 9, owner="a", uid="uid-a"), False)
    listener("team-a", secret("s", 9, owner="a", uid="uid-old"), False)  # an older owner
    listener("team-a", secret("s", 9, owner="nobody", uid="uid-x"), True)  # not ours
    assert rt.queue.wait_idle(30)  # the submits are synchronous: idle means handled
    assert calls == [("a", frozenset({Trigger.PROJECTED_CHANGED}))]
