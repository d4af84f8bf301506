"""`kustos access revoke`: every credential of a principal issued before the revocation is
refused, on every verifier that shares the store, within the bound; later ones work.

Two `AccessService`s on one SQLite file play two API replicas; requests are signed by
botocore itself; only clocks are moved.
"""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from multidict import CIMultiDict, CIMultiDictProxy

from kustos.crypto import Keyring
from kustos.errors import AuthenticationError, InvalidParameterError, StoreError
from kustos.kube.access import TokenReviewResult
from kustos.models.access_keys import INACTIVE
from kustos.models.identity import Principal
from kustos.models.request import RequestView
from kustos.services.access.authorize import AccessService
from kustos.services.access.container_credentials import EVENT_NAME, ContainerCredentials
from kustos.services.access.keys import AccessKeyService
from kustos.services.access.policies import PolicyIndex
from kustos.services.access.revocations import (
    BOUND_SECONDS,
    RevocationList,
    RevocationService,
    parse_principal_arn,
)
from kustos.services.access.tokens import TokenAuthenticator
from kustos.services.audit.service import AuditService
from kustos.store import SqlStore
from kustos.store.access_keys import AccessKeyStore
from kustos.store.audit import AuditQuery, AuditStore
from kustos.store.revocations import RevocationStore

HOST = "kustos.example:8443"
KEYRING = Keyring.generate()
SA_ARN = "arn:kustos:iam::team-a:serviceaccount/app"


def jwt(claims: dict[str, Any]) -> str:
    def part(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2ln"


class Reviewer:
    """Stands in for TokenReview: accepts any token, as ServiceAccount team-a/app."""

    def review_token(self, token: str, audiences: list[str]) -> TokenReviewResult:
        return TokenReviewResult(
            authenticated=True,
            username="system:serviceaccount:team-a:app",
            uid="u-1",
            groups=("system:serviceaccounts",),
            audiences=tuple(audiences),
            extra={"authentication.kubernetes.io/pod-name": ["app-0"]},
            error="",
        )


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    SqlStore(url).close()
    return url


class Replica:
    def __init__(self, url: str, monotonic: Monotonic) -> None:
        self.store = SqlStore(url)
        self.revocations = RevocationList(
            RevocationStore(self.store.engine).all, monotonic=monotonic
        )
        self.keys = AccessKeyService(
            AccessKeyStore(self.store.engine), lambda: KEYRING, revocations=self.revocations
        )
        self.access = AccessService(
            TokenAuthenticator(Reviewer()),
            self.keys,
            PolicyIndex(lambda: ([], [])),
            region="test",
            revocations=self.revocations,
        )

    def request(self, key_id: str, secret: str, token: str | None = None) -> RequestView:
        request = AWSRequest(
            method="POST",
            url=f"https://{HOST}/",
            data=b"{}",
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "secretsmanager.GetSecretValue",
            },
        )
        SigV4Auth(Credentials(key_id, secret, token), "secretsmanager", "test").add_auth(request)
        headers = CIMultiDict(request.headers.items())
        headers["Host"] = HOST
        return RequestView(
            method="POST",
            path="/",
            query="",
            headers=CIMultiDictProxy(headers),
            body=b"{}",
            remote_addr="10.0.0.7",
            scheme="https",
        )

    def bearer(self, token: str) -> RequestView:
        headers = CIMultiDictProxy(CIMultiDict({"Authorization": f"Bearer {token}"}))
        return RequestView(
            method="POST",
            path="/",
            query="",
            headers=headers,
            body=b"{}",
            remote_addr="10.0.0.7",
            scheme="https",
        )


def refused(replica: Replica, req: RequestView) -> bool:
    with pytest.raises(AuthenticationError) as caught:
        replica.access.authenticate(req)
    return caught.value.aws_code == "UnrecognizedClientException"


def test_a_revocation_through_one_replica_is_in_force_on_the_other_within_the_bound(
    db: str,
) -> None:
    clock = Monotonic()
    one, two = Replica(db, clock), Replica(db, clock)
    issued = one.keys.create("team-a", "app")
    long_term = (issued.record.access_key_id, issued.secret_access_key.reveal())
    pod = Principal.user("system:serviceaccount:team-a:app", pod_name="app-0")
    session = two.keys.issue_session(pod)
    session_args = (session.access_key_id, session.secret_access_key.reveal(), session.token)
    bearer = jwt({"iat": int(time.time()) - 5, "exp": int(time.time()) + 3600})
    for replica in (one, two):  # all work, and are now in every cache
        assert replica.access.authenticate(replica.request(*long_term)).arn == SA_ARN
        assert replica.access.authenticate(replica.request(*session_args)).arn == SA_ARN
        assert replica.access.authenticate(replica.bearer(bearer)).arn == SA_ARN

    revocation, deactivated = RevocationService(RevocationStore(one.store.engine)).revoke(
        SA_ARN, by="arn:kustos:iam::cluster:user/alice", reason="leaked"
    )
    assert deactivated == 1
    assert AccessKeyStore(one.store.engine).list()[0].status == INACTIVE

    clock.now += BOUND_SECONDS  # the bound passes: no replica may still accept any of them
    for replica in (one, two):
        assert refused(replica, replica.request(*long_term))
        assert refused(replica, replica.request(*session_args))
        assert refused(replica, replica.bearer(bearer))
    # Credentials issued after the revocation work again (a fresh token, fresh sessions).
    later = jwt({"iat": int(revocation.revoked_at.timestamp()) + 2, "exp": int(time.time()) + 3600})
    assert two.access.authenticate(two.bearer(later)).arn == SA_ARN
    fresh = two.access.session_for(two.access.container_caller(later)[0], later)
    args = (fresh.access_key_id, fresh.secret_access_key.reveal(), fresh.token)
    assert one.access.authenticate(one.request(*args)).arn == SA_ARN
    # An old token cannot be traded for fresh session credentials.
    with pytest.raises(AuthenticationError):
        one.access.credentials_for(bearer)


def test_the_list_is_reread_on_its_poll_and_never_used_past_the_bound(db: str) -> None:
    clock = Monotonic()
    loads: list[int] = []
    store = RevocationStore(SqlStore(db).engine)

    def load() -> dict[str, datetime]:
        loads.append(1)
        if len(loads) > 2:
            raise StoreError("store failed to read revocations: OperationalError")
        return store.all()

    listing = RevocationList(load, monotonic=clock, poll_seconds=2, max_age=10)
    listing.check(SA_ARN, None)
    assert len(loads) == 1
    clock.now += 1
    listing.check(SA_ARN, None)
    assert len(loads) == 1  # within the poll: the snapshot
    RevocationService(store).revoke(SA_ARN, by="me")
    clock.now += 1.5
    with pytest.raises(AuthenticationError):
        listing.check(SA_ARN, datetime.now(UTC) - timedelta(seconds=1))
    assert len(loads) == 2
    clock.now += 3  # the store fails now: a snapshot younger than the bound still serves
    with pytest.raises(AuthenticationError):
        listing.check(SA_ARN, None)
    clock.now += 10  # ... but never past it: fail closed
    with pytest.raises(StoreError):
        listing.check("arn:kustos:iam::team-b:serviceaccount/other", None)


@pytest.mark.parametrize(
    "bad", ["", "app", "arn:kustos:iam::team-a:role/x", "arn:aws:iam::123456789012:user/alice"]
)
def test_only_principal_arns_can_be_revoked(bad: str) -> None:
    with pytest.raises(InvalidParameterError):
        parse_principal_arn(bad)
    assert parse_principal_arn(SA_ARN) == ("team-a", "app")
    assert parse_principal_arn("arn:kustos:iam::cluster:user/alice") is None


def test_session_credentials_never_outlive_the_token(db: str) -> None:
    replica = Replica(db, Monotonic())
    now = int(time.time())
    short = jwt({"iat": now - 60, "exp": now + 600})
    issued = replica.access.credentials_for(short)
    assert issued.expiration <= datetime.fromtimestamp(now + 600, UTC)
    assert issued.expiration > datetime.now(UTC) + timedelta(seconds=500)
    long = jwt({"iat": now - 60, "exp": now + 86400})
    capped = replica.access.credentials_for(long)
    assert capped.expiration <= datetime.now(UTC) + timedelta(hours=1, seconds=1)


def test_each_issue_of_container_credentials_is_audited_without_secrets(db: str) -> None:
    replica = Replica(db, Monotonic())
    audit = AuditService(AuditStore(replica.store.engine), "test", lambda: KEYRING)
    try:
        issuer = ContainerCredentials(replica.access, audit)
        token = jwt({"iat": int(time.time()) - 5, "exp": int(time.time()) + 900})
        issued = issuer.issue(token, source_ip="10.1.2.3", user_agent="Boto3/1.0")
        RevocationService(RevocationStore(replica.store.engine)).revoke(SA_ARN, by="me")
        replica.revocations._loaded_at = None  # re-read now
        with pytest.raises(AuthenticationError):
            issuer.issue(token)
        records = [json.loads(text) for _, text in audit.lookup(AuditQuery(event_name=EVENT_NAME))]
    finally:
        audit.close()
    ok, refused_ = sorted(records, key=lambda r: "errorCode" in r)
    assert ok["userIdentity"]["arn"] == SA_ARN and ok["userIdentity"]["pod"] == "app-0"
    assert ok["requestParameters"] == {"podName": "app-0"}
    assert ok["responseElements"]["accessKeyId"] == issued.access_key_id
    assert ok["sourceIPAddress"] == "10.1.2.3"
    assert 800 <= ok["additionalEventData"]["lifetimeSeconds"] <= 900
    text = json.dumps(records)
    assert issued.secret_access_key.reveal() not in text and issued.token not in text
    assert token not in text
    assert refused_["errorCode"] == "UnrecognizedClientException"
