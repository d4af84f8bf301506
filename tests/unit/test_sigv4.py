"""SigV4 verification: requests signed by botocore itself, then bent in every way that must fail.

The verifier is the real `AccessService` over a real (temporary SQLite) key store; only the
clock is moved. A request is signed exactly as boto3 signs it (`SigV4Auth.add_auth`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from multidict import CIMultiDict, CIMultiDictProxy

from kustos.crypto import Keyring
from kustos.errors import AuthenticationError
from kustos.kube.access import TokenReviewResult
from kustos.models.request import RequestView
from kustos.services.access.authorize import AccessService
from kustos.services.access.keys import AccessKeyService
from kustos.services.access.policies import PolicyIndex
from kustos.services.access.sigv4_keys import SigningKeys, derive_signing_key
from kustos.services.access.tokens import TokenAuthenticator
from kustos.store import SqlStore
from kustos.store.access_keys import AccessKeyStore

REGION = "test"
HOST = "kustos.example:8443"
BODY = json.dumps({"SecretId": "prod/db"}).encode()
KEYRING = Keyring.generate()


class _NoTokens:
    def review_token(self, token: str, audiences: list[str]) -> TokenReviewResult:
        raise AssertionError("no bearer tokens in these tests")


class Clock:
    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    s = SqlStore(f"sqlite:///{tmp_path / 'k.db'}")
    yield s
    s.close()


@pytest.fixture
def keys(store: SqlStore, clock: Clock) -> AccessKeyService:
    return AccessKeyService(AccessKeyStore(store.engine), lambda: KEYRING, clock=clock)


@pytest.fixture
def access(keys: AccessKeyService, clock: Clock) -> AccessService:
    policies = PolicyIndex(lambda: ([], []))
    return AccessService(
        TokenAuthenticator(_NoTokens()), keys, policies, region=REGION, clock=clock
    )


def signed(
    key_id: str,
    secret: str,
    *,
    token: str | None = None,
    body: bytes = BODY,
    region: str = REGION,
    service: str = "secretsmanager",
    target: str = "GetSecretValue",
    url: str = f"https://{HOST}/",
) -> AWSRequest:
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"secretsmanager.{target}",
        },
    )
    SigV4Auth(Credentials(key_id, secret, token), service, region).add_auth(request)
    return request


def view(request: AWSRequest, **changes: Any) -> RequestView:
    headers = CIMultiDict(request.headers.items())
    headers["Host"] = HOST
    for name, value in dict(changes.pop("headers", {})).items():
        headers[name] = value
    path, _, query = request.url.split(HOST, 1)[1].partition("?")
    fields: dict[str, Any] = {
        "method": request.method,
        "path": path,
        "query": query,
        "headers": CIMultiDictProxy(headers),
        "body": request.body or b"",
        "remote_addr": "10.0.0.7",
        "scheme": "https",
    }
    fields.update(changes)
    return RequestView(**fields)


def code_of(access: AccessService, req: RequestView) -> str:
    with pytest.raises(AuthenticationError) as caught:
        access.authenticate(req)
    return caught.value.aws_code


def test_a_request_signed_by_botocore_authenticates_as_the_keys_service_account(
    access: AccessService, keys: AccessKeyService
) -> None:
    issued = keys.create("team-a", "app")
    req = view(signed(issued.record.access_key_id, issued.secret_access_key.reveal()))
    principal = access.authenticate(req)
    assert principal.arn == "arn:kustos:iam::team-a:serviceaccount/app"
    assert principal.auth_method == "SigV4"
    assert principal.access_key_id == issued.record.access_key_id


def test_get_with_a_query_string_verifies(access: AccessService, keys: AccessKeyService) -> None:
    issued = keys.create("team-a", "app")
    url = f"https://{HOST}/some/path?b=2&a=1&c=x%2Fy"
    request = AWSRequest(method="GET", url=url, headers={"X-Amz-Target": "x"})
    SigV4Auth(
        Credentials(issued.record.access_key_id, issued.secret_access_key.reveal()),
        "secretsmanager",
        REGION,
    ).add_auth(request)
    assert access.authenticate(view(request)).namespace == "team-a"
    tampered = view(request, query="b=2&a=1&c=x%2Fz")
    assert code_of(access, tampered) == "InvalidSignatureException"


def test_tampered_body_is_rejected(access: AccessService, keys: AccessKeyService) -> None:
    issued = keys.create("team-a", "app")
    req = signed(issued.record.access_key_id, issued.secret_access_key.reveal())
    other = json.dumps({"SecretId": "prod/other"}).encode()
    assert code_of(access, view(req, body=other)) == "InvalidSignatureException"


def test_a_body_hash_header_cannot_detach_the_body(
    access: AccessService, keys: AccessKeyService
) -> None:
    """botocore would trust X-Amz-Content-SHA256 as the body hash; the verifier checks it."""
    import hashlib

    issued = keys.create("team-a", "app")
    req = signed(issued.record.access_key_id, issued.secret_access_key.reveal())
    other = json.dumps({"SecretId": "prod/other"}).encode()
    for claimed in (hashlib.sha256(BODY).hexdigest(), "UNSIGNED-PAYLOAD"):
        bent = view(req, body=other, headers={"X-Amz-Content-SHA256": claimed})
        assert code_of(access, bent) == "InvalidSignatureException"
    # signed along (as S3 clients do): the signature then covers the header, not the body
    for claimed in (hashlib.sha256(BODY).hexdigest(), "UNSIGNED-PAYLOAD"):
        request = AWSRequest(
            method="POST",
            url=f"https://{HOST}/",
            data=BODY,
            headers={"X-Amz-Content-SHA256": claimed},
        )
        SigV4Auth(
            Credentials(issued.record.access_key_id, issued.secret_access_key.reveal()),
            "secretsmanager",
            REGION,
        ).add_auth(request)
        if claimed != "UNSIGNED-PAYLOAD":
            assert access.authenticate(view(request)).namespace == "team-a"
        assert code_of(access, view(request, body=other)) == "InvalidSignatureException"


def test_tampered_signed_header_is_rejected(access: AccessService, keys: AccessKeyService) -> None:
    issued = keys.create("team-a", "app")
    req = signed(issued.record.access_key_id, issued.secret_access_key.reveal())
    bent = view(req, headers={"X-Amz-Target": "secretsmanager.DeleteSecret"})
    assert code_of(access, bent) == "InvalidSignatureException"


def test_wrong_secret_and_unknown_key(access: AccessService, keys: AccessKeyService) -> None:
    issued = keys.create("team-a", "app")
    wrong = view(signed(issued.record.access_key_id, "x" * 40))
    assert code_of(access, wrong) == "InvalidSignatureException"
    unknown = view(signed("AKIAAAAAAAAAAAAAAAAA", issued.secret_access_key.reveal()))
    assert code_of(access, unknown) == "UnrecognizedClientException"


def test_deleted_key_stops_working(access: AccessService, keys: AccessKeyService) -> None:
    issued = keys.create("team-a", "app")
    req = view(signed(issued.record.access_key_id, issued.secret_access_key.reveal()))
    access.authenticate(req)
    keys.delete(issued.record.access_key_id)
    assert code_of(access, req) == "UnrecognizedClientException"


@pytest.mark.parametrize(
    ("offset", "fragment"),
    [(timedelta(minutes=6), "Signature expired"), (timedelta(minutes=-6), "not yet current")],
)
def test_requests_outside_the_clock_skew_are_refused(
    access: AccessService,
    keys: AccessKeyService,
    clock: Clock,
    offset: timedelta,
    fragment: str,
) -> None:
    issued = keys.create("team-a", "app")
    req = view(signed(issued.record.access_key_id, issued.secret_access_key.reveal()))
    clock.offset = offset  # the same request, replayed 6 minutes later (or from the future)
    with pytest.raises(AuthenticationError, match=fragment) as caught:
        access.authenticate(req)
    assert caught.value.aws_code == "InvalidSignatureException"
    clock.offset = offset / 2  # 3 minutes: inside the window, as AWS allows
    assert access.authenticate(req).namespace == "team-a"


@pytest.mark.parametrize(("region", "service"), [("us-east-1", "secretsmanager"), (REGION, "s3")])
def test_wrong_scope_is_refused(
    access: AccessService, keys: AccessKeyService, region: str, service: str
) -> None:
    issued = keys.create("team-a", "app")
    req = view(
        signed(
            issued.record.access_key_id,
            issued.secret_access_key.reveal(),
            region=region,
            service=service,
        )
    )
    with pytest.raises(AuthenticationError, match="scoped") as caught:
        access.authenticate(req)
    assert caught.value.aws_code == "InvalidSignatureException"


@pytest.mark.parametrize(
    ("authorization", "expected"),
    [
        (None, "MissingAuthenticationTokenException"),
        ("", "MissingAuthenticationTokenException"),
        ("Basic dXNlcjpwYXNz", "IncompleteSignatureException"),
        (
            "AWS4-HMAC-SHA256 Credential=AKIAAAAAAAAAAAAAAAAA/20240101/test/secretsmanager/"
            "aws4_request, SignedHeaders=host;x-amz-date",
            "IncompleteSignatureException",
        ),
        (
            "AWS4-HMAC-SHA256 Credential=short/20240101/test/secretsmanager/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
            "IncompleteSignatureException",
        ),
        ("AWS4-HMAC-SHA256 garbage", "IncompleteSignatureException"),
    ],
)
def test_malformed_authorization(
    access: AccessService, keys: AccessKeyService, authorization: str | None, expected: str
) -> None:
    issued = keys.create("team-a", "app")
    req = signed(issued.record.access_key_id, issued.secret_access_key.reveal())
    headers = CIMultiDict(req.headers.items())
    headers["Host"] = HOST
    del headers["Authorization"]
    if authorization is not None:
        headers["Authorization"] = authorization
    bent = replace(view(req), headers=CIMultiDictProxy(headers))
    assert code_of(access, bent) == expected


def test_missing_date_header(access: AccessService, keys: AccessKeyService) -> None:
    issued = keys.create("team-a", "app")
    req = signed(issued.record.access_key_id, issued.secret_access_key.reveal())
    headers = CIMultiDict(req.headers.items())
    headers["Host"] = HOST
    del headers["X-Amz-Date"]
    assert code_of(access, replace(view(req), headers=CIMultiDictProxy(headers))) == (
        "IncompleteSignatureException"
    )


def test_session_credentials(access: AccessService, keys: AccessKeyService, clock: Clock) -> None:
    from kustos.models.identity import Principal

    pod = Principal.user(
        "system:serviceaccount:team-b:worker",
        uid="u-1",
        pod_name="worker-0",
        groups=("system:serviceaccounts", "system:serviceaccounts:team-b"),
    )
    creds = keys.issue_session(pod)
    secret = creds.secret_access_key.reveal()
    req = view(signed(creds.access_key_id, secret, token=creds.token))
    principal = access.authenticate(req)
    assert principal.arn == "arn:kustos:iam::team-b:serviceaccount/worker"
    assert principal.pod_name == "worker-0"
    assert principal.groups == pod.groups
    # without its token, a session key is unknown
    assert code_of(access, view(signed(creds.access_key_id, secret))) == (
        "UnrecognizedClientException"
    )
    # the token is bound to its access key id
    other = keys.issue_session(pod)
    swapped = view(signed(other.access_key_id, secret, token=creds.token))
    assert code_of(access, swapped) == "UnrecognizedClientException"
    # an edited token does not open
    head, tail = creds.token[:-6], creds.token[-6:]
    edited = head + ("A" if tail[0] != "A" else "B") + tail[1:]
    assert code_of(access, view(signed(creds.access_key_id, secret, token=edited))) == (
        "UnrecognizedClientException"
    )
    # a token sealed under a keyring we do not have does not open
    foreign = AccessKeyService(keys._store, lambda: Keyring.generate("k9"))
    alien = foreign.issue_session(pod)
    req = view(signed(alien.access_key_id, alien.secret_access_key.reveal(), token=alien.token))
    assert code_of(access, req) == "UnrecognizedClientException"
    # expired credentials
    clock.offset = timedelta(hours=1, minutes=1)
    late = view(signed(creds.access_key_id, secret, token=creds.token))
    with pytest.raises(AuthenticationError) as caught:
        AccessService(
            access.tokens, keys, access.policies, region=REGION, clock=lambda: datetime.now(UTC)
        ).authenticate(late)
    assert caught.value.aws_code == "ExpiredTokenException"


def test_the_store_holds_no_secret_in_clear(
    keys: AccessKeyService, store: SqlStore, tmp_path: Path
) -> None:
    issued = keys.create("team-a", "app")
    secret = issued.secret_access_key.reveal()
    assert secret not in repr(issued)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM access_keys")).all()
    assert len(rows) == 1
    assert secret.encode() not in repr(rows).encode()
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("k.db*"))
    assert issued.record.access_key_id.encode() in raw  # we are looking at the right bytes
    assert secret.encode() not in raw
    assert [k.access_key_id for k in keys.list("team-a")] == [issued.record.access_key_id]


class _SignsAllBut(SigV4Auth):  # type: ignore[misc]  # botocore is untyped (Any)
    """A signer that leaves one header out of SignedHeaders (as a careless client might)."""

    def __init__(self, credentials: Credentials, leave_out: str) -> None:
        super().__init__(credentials, "secretsmanager", REGION)
        self._leave_out = leave_out

    def headers_to_sign(self, request: AWSRequest) -> object:
        headers = super().headers_to_sign(request)
        del headers[self._leave_out]
        return headers


def test_an_unsigned_operation_header_is_refused_so_a_replay_cannot_retarget(
    access: AccessService, keys: AccessKeyService
) -> None:
    issued = keys.create("team-a", "app")
    request = AWSRequest(
        method="POST",
        url=f"https://{HOST}/",
        data=BODY,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "secretsmanager.GetSecretValue",
        },
    )
    credentials = Credentials(issued.record.access_key_id, issued.secret_access_key.reveal())
    _SignsAllBut(credentials, "x-amz-target").add_auth(request)
    assert "x-amz-target" not in request.headers["Authorization"]
    with pytest.raises(AuthenticationError, match="X-Amz-Target") as caught:
        access.authenticate(view(request))
    assert caught.value.aws_code == "IncompleteSignatureException"
    # The captured GetSecretValue, re-targeted as DeleteSecret: refused the same way.
    retargeted = view(request, headers={"X-Amz-Target": "secretsmanager.DeleteSecret"})
    assert code_of(access, retargeted) == "IncompleteSignatureException"
    # Signed as the SDKs sign it, the same request is accepted; re-targeted, it is not.
    proper = signed(issued.record.access_key_id, issued.secret_access_key.reveal())
    assert "x-amz-target" in proper.headers["Authorization"]
    assert access.authenticate(view(proper)).namespace == "team-a"
    bent = view(proper, headers={"X-Amz-Target": "secretsmanager.DeleteSecret"})
    assert code_of(access, bent) == "InvalidSignatureException"


# -- derived signing keys (kustos.services.access.sigv4_keys) ------------------------------------
@pytest.mark.parametrize("day", ["20300102", "20300103"])
def test_the_derived_key_signs_as_botocore_does(day: str) -> None:
    request = AWSRequest(method="POST", url="https://h/", data=b"{}")
    request.context["timestamp"] = f"{day}T000000Z"
    signer = SigV4Auth(Credentials("AKIAEXAMPLE0000000000", "s3cr3t"), "secretsmanager", REGION)
    expected = signer.signature("string to sign", request)
    key = derive_signing_key("s3cr3t", day, REGION, "secretsmanager")
    assert hmac.new(key, b"string to sign", hashlib.sha256).hexdigest() == expected


def test_entries_are_per_secret_and_scope() -> None:
    cache = SigningKeys()
    a = cache.get("AKIA1", "one", "20300102", REGION, "secretsmanager")
    assert cache.get("AKIA1", "one", "20300102", REGION, "secretsmanager") is a
    assert cache.get("AKIA1", "two", "20300102", REGION, "secretsmanager") != a
    assert cache.get("AKIA1", "one", "20300103", REGION, "secretsmanager") != a
    assert cache.get("AKIA1", "one", "20300102", "other", "secretsmanager") != a


def test_cached_keys_verify_repeatedly_and_a_deleted_key_still_stops(
    access: AccessService,
    keys: AccessKeyService,
) -> None:
    issued = keys.create("team-a", "app")
    key_id, secret = issued.record.access_key_id, issued.secret_access_key.reveal()
    for _ in range(3):
        assert access.authenticate(view(signed(key_id, secret))).access_key_id == key_id
    assert code_of(access, view(signed(key_id, secret + "x"))) == "InvalidSignatureException"
    keys.delete(key_id)
    assert code_of(access, view(signed(key_id, secret))) == "UnrecognizedClientException"


def test_a_new_day_uses_a_new_key(
    access: AccessService, keys: AccessKeyService, clock: Clock
) -> None:
    issued = keys.create("team-a", "app")
    key_id, secret = issued.record.access_key_id, issued.secret_access_key.reveal()
    access.authenticate(view(signed(key_id, secret)))
    clock.offset = timedelta(days=1)
    # signed for today, checked "tomorrow": refused (skew), not verified with today's key
    assert code_of(access, view(signed(key_id, secret))) == "InvalidSignatureException"
