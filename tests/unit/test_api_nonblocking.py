"""GetSecretValue answered on the event loop (`kustos.models.nonblocking`), with every
guarantee of the worker-thread path: through the real aiohttp app, the real AccessService,
the store on a SQLite file and the real AuditService (tests/local_api.py).

- a request that would block (cold token cache, cold store cache, the day's LastAccessedDate
  write) runs on a worker thread, and its dropped attempt leaves no audit record;
- a warm request never touches the thread pool;
- its answer waits for its audit record to be durable, without blocking the loop;
- if the record cannot be written, the value never leaves (fail closed).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from tests.local_api import bearer_headers, build_services

from kustos.api.server import build_app
from kustos.models.nonblocking import (
    WouldBlock,
    after_audit,
    defer_audit,
    must_not_block,
    nonblocking,
)
from kustos.models.sensitive import SecretValue

VALUE = "nonblocking-canary-value"


class CountingExecutor(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(4)
        self.submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[dict[str, Any]]:
    backend, extra = build_services(tmp_path / "store.db")
    record = extra["secrets"].create("bench", "app/db", object_name="app-db")
    extra["secrets"].add_version(record, SecretValue(VALUE))
    backend.executor = CountingExecutor()
    yield {"backend": backend, "arn": record.arn, **extra}
    extra["audit"].close()
    extra["store"].close()


def _records(audit: Any) -> list[dict[str, Any]]:
    return [json.loads(row[-3]) for row in audit.store.iter_chain()]


def _run(served: dict[str, Any], scenario: Callable[[TestClient[Any, Any]], Any]) -> Any:
    async def go() -> Any:
        async with TestClient(TestServer(build_app(served["backend"]))) as client:
            return await scenario(client)

    return asyncio.run(go())


async def _get_value(client: TestClient[Any, Any], arn: str) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/", data=json.dumps({"SecretId": arn}), headers=bearer_headers())
    return resp.status, json.loads(await resp.read())


def test_the_guard_and_the_deferrals_act_only_inside_the_scope() -> None:
    must_not_block("outside")  # no effect
    assert defer_audit("event") is False
    ran: list[str] = []
    after_audit(lambda: ran.append("now"))
    assert ran == ["now"]
    with nonblocking() as deferred:
        with pytest.raises(WouldBlock) as raised:
            must_not_block("a store transaction")
        assert raised.value.what == "a store transaction"
        assert not isinstance(raised.value, Exception)  # no `except Exception` swallows it
        assert defer_audit("event") is True
        after_audit(lambda: ran.append("later"))
    assert deferred.events == ["event"] and ran == ["now"]
    deferred.callbacks[0]()
    assert ran == ["now", "later"]
    must_not_block("outside again")


def test_cold_requests_run_on_a_thread_warm_ones_on_the_loop_one_record_each(
    served: dict[str, Any],
) -> None:
    async def scenario(client: TestClient[Any, Any]) -> tuple[Any, ...]:
        first = await _get_value(client, served["arn"])
        after_first = served["backend"].executor.submitted
        second = await _get_value(client, served["arn"])
        warm = served["backend"].executor.submitted
        rest = [await _get_value(client, served["arn"]) for _ in range(5)]
        return after_first, warm, [first, second, *rest]

    after_first, warm, answers = _run(served, scenario)
    assert [status for status, _ in answers] == [200] * 7
    assert {body["SecretString"] for _, body in answers} == {VALUE}
    # The first call would block (TokenReview, the store read, LastAccessedDate) and ran on
    # a thread. The second reads the record the first one's LastAccessedDate write changed
    # (a store read, again on a thread: once a day per secret). Warm calls use the loop only.
    assert after_first == 1 and warm == 2
    assert served["backend"].executor.submitted == warm
    reads = [r for r in _records(served["audit"]) if r["eventName"] == "GetSecretValue"]
    assert len(reads) == 7  # the dropped attempts left no record
    assert all(r.get("errorCode") is None for r in reads)


def test_the_answer_waits_for_its_record_without_blocking_the_loop(
    served: dict[str, Any],
) -> None:
    audit = served["audit"]
    release = threading.Event()
    entered = threading.Event()
    append = audit.store.append

    def slow_append(rows: Any, **kwargs: Any) -> Any:
        if any(b"GetSecretValue" in str(row).encode() for row in rows) and not release.is_set():
            entered.set()
            assert release.wait(10)
        return append(rows, **kwargs)

    async def scenario(client: TestClient[Any, Any]) -> tuple[Any, ...]:
        for _ in range(2):  # warms the caches (their records commit at once)
            await _get_value(client, served["arn"])
        before = served["backend"].executor.submitted
        audit.store.append = slow_append
        pending = asyncio.ensure_future(_get_value(client, served["arn"]))
        await asyncio.get_running_loop().run_in_executor(None, entered.wait, 10)
        health = await client.get("/healthz")  # the loop still serves while the commit waits
        waiting = not pending.done()
        count_while_waiting = len(_records(audit))
        release.set()
        status, body = await pending
        return before, health.status, waiting, count_while_waiting, status, body

    before, health, waiting, count_while_waiting, status, body = _run(served, scenario)
    assert health == 200 and waiting
    assert status == 200 and body["SecretString"] == VALUE
    assert served["backend"].executor.submitted == before  # answered on the loop
    assert len(_records(audit)) == count_while_waiting + 1  # durable before the answer came


def test_no_value_leaves_when_its_record_cannot_be_written(served: dict[str, Any]) -> None:
    audit = served["audit"]

    def failing_append(rows: Any, **kwargs: Any) -> Any:
        raise OSError("disk gone")

    async def scenario(client: TestClient[Any, Any]) -> tuple[Any, ...]:
        for _ in range(2):  # warm
            await _get_value(client, served["arn"])
        before = served["backend"].executor.submitted
        audit.store.append = failing_append
        resp = await client.post(
            "/", data=json.dumps({"SecretId": served["arn"]}), headers=bearer_headers()
        )
        return before, resp.status, await resp.text()

    before, status, text = _run(served, scenario)
    assert served["backend"].executor.submitted == before  # the loop's path refused it
    assert status == 503 and "InternalServiceError" in text
    assert VALUE not in text


def test_past_the_stall_bound_a_queued_record_is_withdrawn_a_claimed_one_waits(
    served: dict[str, Any],
) -> None:
    """As the worker-thread path (AuditService.record_many): a commit that hangs makes the
    store *down* after `stall_seconds`; the call whose record is being committed waits for
    the store's verdict, the one queued behind it is refused and its record never written."""
    from kustos.config import AuditSettings

    audit = served["audit"]
    audit.settings = AuditSettings(stall_seconds=0.3, commit_timeout=0.6)
    release = threading.Event()
    entered = threading.Event()
    append = audit.store.append

    def hanging_append(rows: Any, **kwargs: Any) -> Any:
        if not release.is_set():
            entered.set()
            assert release.wait(20)
        return append(rows, **kwargs)

    async def scenario(client: TestClient[Any, Any]) -> tuple[Any, ...]:
        for _ in range(2):  # warm
            await _get_value(client, served["arn"])
        before = served["backend"].executor.submitted
        audit.store.append = hanging_append
        claimed = asyncio.ensure_future(_get_value(client, served["arn"]))
        await asyncio.get_running_loop().run_in_executor(None, entered.wait, 10)
        queued = await _get_value(client, served["arn"])  # refused after the stall bound
        count = len(_records(audit))
        release.set()
        return before, queued, count, await claimed

    before, queued, count, claimed = _run(served, scenario)
    assert served["backend"].executor.submitted == before
    assert queued[0] == 503 and queued[1]["__type"] == "InternalServiceError"
    assert VALUE not in json.dumps(queued[1])
    assert claimed[0] == 200 and claimed[1]["SecretString"] == VALUE
    reads = [r for r in _records(audit) if r["eventName"] == "GetSecretValue"]
    assert len(reads) == 3 and len(_records(audit)) == count + 1  # the refused one: none
