"""spec.resourcePolicy of a ManagedSecret is the resource policy in force: the controller
checks it as PutResourcePolicy does (BlockPublicPolicy applied), keeps the last valid one
when it fails, and says so on the object; AccessService then decides with it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.kube_helpers import present
from tests.unit.fakes import FakeEvents, FakeSecrets, stand_in

from kustos.crypto import Keyring
from kustos.kube.secrets import SecretGateway
from kustos.models.records import SecretRecord
from kustos.policy import Request, evaluate, parse_policy
from kustos.policy.model import PolicyKind
from kustos.services.controller.projection import ProjectionService
from kustos.services.controller.reconcile import ManagedSecretService
from kustos.services.controller.sources import SourceService
from kustos.services.core.objects import ManagedObject
from kustos.services.core.resource_policy import PUBLIC_ACCEPTED, digest, follow_spec
from kustos.services.core.secrets import SecretService
from kustos.store import SqlStore

KEYRING = Keyring.generate()
READER = "arn:kustos:iam::billing:serviceaccount/invoicer"


def share(principal: str = READER, effect: str = "Allow") -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": effect,
                "Action": "secretsmanager:GetSecretValue",
                "Resource": "*",
                "Principal": {"AWS": principal},
            }
        ],
    }


class Harness:
    def __init__(self, store: SqlStore) -> None:
        self.events = FakeEvents()
        self.kube = FakeSecrets()
        self.secrets = SecretService(store, lambda: KEYRING, "test")
        self.managed = ManagedSecretService(
            self.secrets,
            SourceService(stand_in(SecretGateway, self.kube)),
            ProjectionService(stand_in(SecretGateway, self.kube)),
            self.events,
        )
        self.status: dict[str, Any] = {}
        self.generation = 0

    def apply(self, policy: Any = None) -> dict[str, Any]:
        """Reconcile generation+1 of `shop/db` with this resourcePolicy; the status is
        carried to the next call as the adapter would patch it."""
        self.generation += 1
        spec: dict[str, Any] = {"name": "prod/db", "generate": {"passwordLength": 16}}
        if policy is not None:
            spec["resourcePolicy"] = policy
        obj = ManagedObject("shop", "db", "uid-db", self.generation, spec, self.status)
        result = self.managed.reconcile(obj)
        assert result.error is None, result.error
        self.status = result.status.to_raw()
        return self.status

    def record(self) -> SecretRecord:
        record = self.secrets.find("shop", "prod/db")
        assert record is not None
        return record

    def allowed(self, principal: str = READER) -> bool:
        record = self.record()
        policy = None
        if record.resource_policy:
            policy = parse_policy(record.resource_policy, kind=PolicyKind.RESOURCE)
        request = Request(
            principal=principal,
            action="secretsmanager:GetSecretValue",
            resource=record.arn,
            principal_namespace="billing",
            resource_namespace="shop",
        )
        # the reader's own identity policy allows: the resource policy decides
        identity = parse_policy(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}
                ],
            }
        )
        return evaluate(request, [identity], policy).allowed


def condition(status: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    return next((c for c in status["conditions"] if c["type"] == ctype), None)


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    store = SqlStore(f"sqlite:///{tmp_path / 'kustos.db'}")
    yield Harness(store)
    store.close()


def test_the_specs_policy_is_put_in_force_and_decides(h: Harness) -> None:
    h.apply()
    assert h.record().resource_policy is None and not h.allowed()
    status = h.apply(share())
    assert json.loads(h.record().resource_policy or "") == share()
    assert h.allowed()
    assert present(condition(status, "Ready"))["status"] == "True"
    assert present(condition(status, "ResourcePolicyInForce"))["status"] == "True"
    assert "PolicyChanged" in h.events.reasons()


def test_a_deny_in_the_spec_is_in_force(h: Harness) -> None:
    h.apply(share())
    assert h.allowed()
    deny = share()
    deny["Statement"].append(
        {
            "Effect": "Deny",
            "Action": "secretsmanager:*",
            "Resource": "*",
            "Principal": {"AWS": READER},
        }
    )
    h.apply(deny)
    assert not h.allowed()


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Permit", "Action": "*", "Resource": "*", "Principal": "*"}
                ],
            },
            "MalformedPolicyDocumentException",
        ),
        (share("*"), "PublicPolicyException"),
        (
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "x",
                        "Resource": "*",
                        "Principal": "*",
                        "Sid": "s" * 21000,
                    }
                ],
            },
            "MalformedPolicyDocumentException",
        ),
    ],
)
def test_an_invalid_or_public_spec_keeps_the_last_valid_policy(
    h: Harness, bad: dict[str, Any], code: str
) -> None:
    h.apply(share())
    before = h.record().resource_policy
    status = h.apply(bad)
    assert h.record().resource_policy == before and h.allowed()
    assert not h.allowed("arn:kustos:iam::other:serviceaccount/x")  # "*" is not in force
    ready = condition(status, "Ready")
    in_force = condition(status, "ResourcePolicyInForce")
    assert ready is not None and in_force is not None
    assert (ready["status"], ready["reason"]) == ("False", "ResourcePolicyRejected")
    assert in_force["status"] == "False" and code in in_force["message"]
    assert "not in force" in ready["message"] and "previous resource policy" in ready["message"]
    warnings = [e for e in h.events.emitted if e[1] == "ResourcePolicyRejected"]
    assert len(warnings) == 1 and warnings[0][3] == "Warning"
    # the projected Secret is still kept: only the policy is refused
    assert h.kube.get("shop", "db") is not None
    h.apply(bad)  # a resync: no second Warning for the same problem
    assert len([e for e in h.events.emitted if e[1] == "ResourcePolicyRejected"]) == 1
    status = h.apply(share())  # fixed
    assert present(condition(status, "Ready"))["status"] == "True"
    assert present(condition(status, "ResourcePolicyInForce"))["status"] == "True"


def test_removing_the_spec_policy_removes_it_from_force(h: Harness) -> None:
    h.apply(share())
    status = h.apply(None)
    assert h.record().resource_policy is None and not h.allowed()
    assert condition(status, "ResourcePolicyInForce") is None


def test_an_unchanged_spec_writes_nothing(h: Harness) -> None:
    h.apply(share())
    updated = h.record().updated_at
    count = len(h.events.emitted)
    h.apply(share())
    assert h.record().updated_at == updated and len(h.events.emitted) == count


def test_the_public_document_a_put_caller_accepted_stays_in_force(h: Harness) -> None:
    h.apply()
    record = h.record()
    public = share("*")
    record = h.secrets.update(
        record.evolve(extra={**record.extra, PUBLIC_ACCEPTED: digest(public)})
    )
    decided = follow_spec(record, public)
    assert decided.problem is None and decided.changed
    # ... that document only: another public one is still refused
    other = share("*", effect="Allow")
    other["Statement"][0]["Action"] = "secretsmanager:*"
    assert follow_spec(record, other).problem is not None
    # and once another policy is in force, the waiver is gone
    moved = follow_spec(decided.record, share())
    assert PUBLIC_ACCEPTED not in moved.record.extra


def test_key_order_and_whitespace_do_not_count_as_a_change() -> None:
    assert digest('{"b": 1, "a": [1, 2]}') == digest({"a": [1, 2], "b": 1})
    assert digest('{"a": [2, 1]}') != digest({"a": [1, 2]})
