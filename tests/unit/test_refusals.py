"""A flood of unauthenticated requests is bounded: per source, the first refusals of a window
get their own audit record, the rest one aggregate record with the count; other sources are
unaffected and memory is bounded. Through the API server's request handler, with the real
AccessService bearer path (TokenAuthenticator) and the audit log on a real SQLite file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict
from tests.unit.fakes import stand_in

from kustos.api.server import ApiBackend, handle
from kustos.crypto import Keyring
from kustos.errors import AuthenticationError
from kustos.kube.access import TokenReviewResult
from kustos.kube.managed_objects import ManagedObjectGateway
from kustos.kube.secrets import SecretGateway
from kustos.models.request import RequestView
from kustos.services.access.refusals import OTHER_SOURCES, RefusalBudget
from kustos.services.access.tokens import TokenAuthenticator
from kustos.services.api.call import Authorizer, CallMeta
from kustos.services.api.service import SecretsApi
from kustos.services.audit.service import AuditService
from kustos.services.core.deletion import DeletionService
from kustos.services.core.secrets import SecretService
from kustos.store import SqlStore
from kustos.store.audit import AuditStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_budget_admits_then_counts_then_tallies() -> None:
    clock = Clock()
    budget = RefusalBudget(
        limit=3, interval=10.0, clock=clock, wall=lambda: datetime(2026, 1, 1, tzinfo=UTC)
    )
    assert [budget.admit("a", "X") for _ in range(3)] == [True] * 3
    assert budget.over("a") and not budget.over("b")  # a spent its budget
    assert [budget.admit("a", c) for c in ("X", "Y", "Y")] == [False] * 3
    assert budget.over("a") and budget.admit("b", "X")
    assert budget.due() == []  # the window has not ended
    clock.now += 10
    (tally,) = budget.due()
    assert (tally.source, tally.count, tally.codes) == ("a", 3, {"X": 1, "Y": 2})
    assert (tally.window_end - tally.window_start).total_seconds() == 10
    assert budget.due() == [] and not budget.over("a")
    assert budget.admit("a", "X")  # a new window, a new budget


def test_budget_memory_is_bounded() -> None:
    clock = Clock()
    budget = RefusalBudget(limit=1, interval=10.0, max_sources=100, clock=clock)
    admitted = [budget.admit(f"10.0.{i // 256}.{i % 256}", "X") for i in range(1000)]
    assert sum(admitted) == 100 and len(budget._windows) == 101
    (tally,) = budget.drain()
    assert tally.source == OTHER_SOURCES and tally.count == 900


class JunkReviewer:
    def __init__(self) -> None:
        self.calls = 0

    def review_token(self, token: str, audiences: list[str]) -> TokenReviewResult:
        self.calls += 1
        return TokenReviewResult(authenticated=False, error="invalid bearer token")


class BearerOnly:
    """AccessService's bearer path: the token and the client's address."""

    def __init__(self, tokens: TokenAuthenticator) -> None:
        self.tokens = tokens

    def authenticate(self, req: RequestView) -> Any:
        header = req.headers.get("authorization") or ""
        if not header:
            raise AuthenticationError(
                "Missing Authentication Token", aws_code="MissingAuthenticationTokenException"
            )
        return self.tokens.authenticate(header.partition(" ")[2], source=req.remote_addr)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore(f"sqlite:///{tmp_path / 'k.db'}")
    yield opened
    opened.close()


def request(source: str, token: str | None) -> RequestView:
    headers = CIMultiDict(
        {
            "X-Amz-Target": "secretsmanager.GetSecretValue",
            "Content-Type": "application/x-amz-json-1.1",
        }
    )
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return RequestView("POST", "/", "", headers, b'{"SecretId": "x"}', source, "https")


def records(audit: AuditService) -> list[dict[str, Any]]:
    return [json.loads(r[-3]) for r in audit.store.iter_chain()]


def test_a_flood_costs_a_bounded_number_of_writes_and_reviews(store: SqlStore) -> None:
    clock = Clock()
    audit = AuditService(AuditStore(store.engine), "test")
    keyring = Keyring.generate()
    api = SecretsApi(
        SecretService(store, lambda: keyring, "test"),
        stand_in(ManagedObjectGateway, None),
        stand_in(SecretGateway, None),
        stand_in(Authorizer, None),
        audit,
        stand_in(DeletionService, None),
        refusals=RefusalBudget(limit=5, interval=10.0, clock=clock),
    )
    reviewer = JunkReviewer()
    tokens = TokenAuthenticator(reviewer, budget=RefusalBudget(limit=5, interval=10.0, clock=clock))
    backend = ApiBackend(BearerOnly(tokens), api)
    answers = [
        handle(backend, request("10.0.0.9", f"junk-{i}"), f"r{i}")[1]["__type"] for i in range(200)
    ]
    answers += [handle(backend, request("10.0.0.9", None), "nohdr")[1]["__type"]]
    assert answers[:5] == ["UnrecognizedClientException"] * 5
    assert set(answers[5:200]) == {"ThrottlingException"}
    assert answers[200] == "MissingAuthenticationTokenException"
    assert reviewer.calls == 5  # the apiserver saw five TokenReviews, not two hundred
    handle(backend, request("10.0.0.10", "junk-other"), "o1")  # another source: its own budget
    assert reviewer.calls == 6
    assert len(records(audit)) == 6  # five of the flood, one of the other source
    clock.now += 10
    api.flush_refusals()  # the window ended: one aggregate record for the flooding source
    got = records(audit)
    assert len(got) == 7
    aggregate = got[-1]
    assert aggregate["eventName"] == "UnauthenticatedRequests"
    assert aggregate["sourceIPAddress"] == "10.0.0.9"
    assert aggregate["additionalEventData"]["count"] == 196
    assert aggregate["additionalEventData"]["errorCodes"] == {
        "ThrottlingException": 195,
        "MissingAuthenticationTokenException": 1,
    }
    assert aggregate["errorCode"] == "ThrottlingException"
    assert [r["sourceIPAddress"] for r in got[:5]] == ["10.0.0.9"] * 5
    assert not any("junk" in json.dumps(r) for r in got)  # tokens are never recorded
    audit.close()


def test_the_last_tallies_are_written_at_close(store: SqlStore) -> None:
    audit = AuditService(AuditStore(store.engine), "test")
    keyring = Keyring.generate()
    api = SecretsApi(
        SecretService(store, lambda: keyring, "test"),
        stand_in(ManagedObjectGateway, None),
        stand_in(SecretGateway, None),
        stand_in(Authorizer, None),
        audit,
        stand_in(DeletionService, None),
        refusals=RefusalBudget(limit=1, interval=3600),
    )
    audit.add_flusher(lambda final: api.flush_refusals(everything=final))
    for i in range(4):
        api.reject("GetSecretValue", AuthenticationError("no"), CallMeta(f"r{i}", "10.1.1.1"))
    assert len(records(audit)) == 1
    audit.close()
    got = records(audit)
    assert len(got) == 2 and got[-1]["additionalEventData"]["count"] == 3
