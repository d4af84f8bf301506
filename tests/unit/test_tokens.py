"""Bearer tokens: TokenReview results cached (successes up to the token's expiry, failures
for seconds), and failed reviews bounded per source address."""

from __future__ import annotations

import base64
import json

import pytest

from kustos.errors import AuthenticationError
from kustos.kube.access import TokenReviewResult
from kustos.services.access.refusals import RefusalBudget
from kustos.services.access.tokens import AUDIENCE, TokenAuthenticator, jwt_expiry

NOW = 1_900_000_000.0
SA = "system:serviceaccount:team-a:app"


def jwt(exp: float | None, nonce: str = "n") -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims: dict[str, object] = {"sub": SA, "nonce": nonce}
    if exp is not None:
        claims["exp"] = int(exp)
    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


class Reviewer:
    """Answers as the API server would; counts the reviews it was asked for."""

    def __init__(self) -> None:
        self.valid: set[str] = set()
        self.audiences: tuple[str, ...] = (AUDIENCE,)
        self.error = "invalid bearer token"
        self.calls: list[tuple[str, list[str]]] = []

    def review_token(self, token: str, audiences: list[str]) -> TokenReviewResult:
        self.calls.append((token, audiences))
        if token not in self.valid:
            return TokenReviewResult(authenticated=False, error=self.error)
        return TokenReviewResult(
            authenticated=True,
            username=SA,
            uid="uid-1",
            groups=("system:serviceaccounts", "system:serviceaccounts:team-a"),
            audiences=self.audiences,
            extra={"authentication.kubernetes.io/pod-name": ["app-0"]},
        )


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def reviewer() -> Reviewer:
    return Reviewer()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def auth(reviewer: Reviewer, clock: Clock) -> TokenAuthenticator:
    return TokenAuthenticator(reviewer, clock=clock)


def code(auth: TokenAuthenticator, token: str) -> str:
    with pytest.raises(AuthenticationError) as caught:
        auth.authenticate(token)
    return caught.value.aws_code


def test_success_is_cached_and_asks_for_audience_kustos(
    auth: TokenAuthenticator, reviewer: Reviewer
) -> None:
    token = jwt(NOW + 3600)
    reviewer.valid.add(token)
    first = auth.authenticate(token)
    second = auth.authenticate(token)
    assert first == second
    assert first.arn == "arn:kustos:iam::team-a:serviceaccount/app"
    assert first.pod_name == "app-0"
    assert first.auth_method == "ServiceAccountToken"
    assert reviewer.calls == [(token, ["kustos"])]


def test_failures_are_cached_for_seconds_only(
    auth: TokenAuthenticator, reviewer: Reviewer, clock: Clock
) -> None:
    token = jwt(NOW + 3600)
    for _ in range(50):  # a junk token replayed in a loop
        assert code(auth, token) == "UnrecognizedClientException"
    assert len(reviewer.calls) == 1
    reviewer.valid.add(token)  # e.g. the ServiceAccount was created meanwhile
    clock.now += 5.1
    assert auth.authenticate(token).namespace == "team-a"
    assert len(reviewer.calls) == 2
    reviewer.error = "service account token has expired"
    other = jwt(NOW + 3600, nonce="x")
    assert code(auth, other) == code(auth, other) == "ExpiredTokenException"
    assert len(reviewer.calls) == 3


def test_failures_cannot_evict_successes(reviewer: Reviewer, clock: Clock) -> None:
    auth = TokenAuthenticator(reviewer, clock=clock, max_entries=3)
    good = jwt(NOW + 3600, nonce="good")
    reviewer.valid.add(good)
    auth.authenticate(good)
    for i in range(10):
        code(auth, jwt(NOW + 3600, nonce=f"junk-{i}"))
    assert len(auth._refused) == 3  # bounded
    calls = len(reviewer.calls)
    auth.authenticate(good)
    assert len(reviewer.calls) == calls  # still served from the cache


def test_failed_reviews_are_bounded_per_source(reviewer: Reviewer, clock: Clock) -> None:
    budget = RefusalBudget(limit=5, interval=10.0, clock=clock)
    auth = TokenAuthenticator(reviewer, clock=clock, budget=budget)
    good = jwt(NOW + 3600, nonce="good")
    reviewer.valid.add(good)
    auth.authenticate(good, source="10.0.0.9")

    def attempt(nonce: str, source: str) -> str:
        with pytest.raises(AuthenticationError) as caught:
            auth.authenticate(jwt(NOW + 3600, nonce=nonce), source=source)
        return caught.value.aws_code

    codes = [attempt(f"junk-{i}", "10.0.0.9") for i in range(100)]
    assert codes[:5] == ["UnrecognizedClientException"] * 5
    assert set(codes[5:]) == {"ThrottlingException"}
    assert len(reviewer.calls) == 1 + 5  # the flood cost five TokenReviews, not a hundred
    assert auth.authenticate(good, source="10.0.0.9").namespace == "team-a"  # cached: passes
    assert attempt("other-source", "10.0.0.10") == "UnrecognizedClientException"
    clock.now += 10
    assert attempt("next-window", "10.0.0.9") == "UnrecognizedClientException"
    assert len(reviewer.calls) == 1 + 5 + 2


def test_cache_lasts_at_most_60_seconds(
    auth: TokenAuthenticator, reviewer: Reviewer, clock: Clock
) -> None:
    token = jwt(NOW + 3600)
    reviewer.valid.add(token)
    auth.authenticate(token)
    clock.now += 59
    auth.authenticate(token)
    assert len(reviewer.calls) == 1
    clock.now += 2
    reviewer.valid.clear()  # revoked (e.g. its pod was deleted): noticed after the TTL
    assert code(auth, token) == "UnrecognizedClientException"
    assert len(reviewer.calls) == 2


def test_cache_never_outlives_the_token(
    auth: TokenAuthenticator, reviewer: Reviewer, clock: Clock
) -> None:
    token = jwt(NOW + 10)
    reviewer.valid.add(token)
    auth.authenticate(token)
    clock.now += 11
    assert code(auth, token) == "ExpiredTokenException"
    assert len(reviewer.calls) == 1  # refused locally, the cache entry was not used


def test_expired_token_is_refused_without_a_review(
    auth: TokenAuthenticator, reviewer: Reviewer
) -> None:
    token = jwt(NOW - 1)
    reviewer.valid.add(token)
    assert code(auth, token) == "ExpiredTokenException"
    assert reviewer.calls == []


def test_api_server_says_expired(auth: TokenAuthenticator, reviewer: Reviewer) -> None:
    reviewer.error = "[invalid bearer token, service account token has expired]"
    assert code(auth, "opaque-token") == "ExpiredTokenException"


def test_token_for_another_audience_is_refused(
    auth: TokenAuthenticator, reviewer: Reviewer
) -> None:
    token = jwt(NOW + 3600)
    reviewer.valid.add(token)
    reviewer.audiences = ("https://kubernetes.default.svc",)
    assert code(auth, token) == "UnrecognizedClientException"
    reviewer.audiences = ()  # audience-agnostic authenticators: a token for the API server
    assert code(auth, token) == "UnrecognizedClientException"


def test_garbage_and_oversize(auth: TokenAuthenticator, reviewer: Reviewer) -> None:
    assert code(auth, "") == "UnrecognizedClientException"
    assert code(auth, "x" * 20_000) == "UnrecognizedClientException"
    assert reviewer.calls == []


def test_cache_is_keyed_by_hash_and_bounded(reviewer: Reviewer, clock: Clock) -> None:
    auth = TokenAuthenticator(reviewer, clock=clock, max_entries=3)
    tokens = [jwt(NOW + 3600, nonce=str(i)) for i in range(5)]
    reviewer.valid.update(tokens)
    for token in tokens:
        auth.authenticate(token)
    cache = auth._cache  # white-box: what the process keeps in memory
    assert len(cache) == 3
    assert not any(token in key for token in tokens for key in cache)


def test_jwt_expiry_reads_only_well_formed_claims() -> None:
    assert jwt_expiry(jwt(NOW)) == NOW
    assert jwt_expiry(jwt(None)) is None
    assert jwt_expiry("a.b") is None
    assert jwt_expiry("a.!!!.c") is None


def test_a_cached_token_is_not_decoded_again_and_keeps_its_iat(
    auth: TokenAuthenticator,
    reviewer: Reviewer,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The entry carries the token's `iat` (revocation needs it) and ends at its `exp`."""
    from kustos.services.access import tokens

    claims = {"sub": SA, "exp": int(NOW + 30), "iat": int(NOW - 5)}
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    token = f"eyJhbGciOiJSUzI1NiJ9.{body}.c2ln"
    reviewer.valid.add(token)
    decoded: list[str] = []
    real = tokens.jwt_claims

    def counting(text: str) -> tokens.Claims:
        decoded.append(text)
        return real(text)

    monkeypatch.setattr(tokens, "jwt_claims", counting)
    for _ in range(3):
        principal, issued_at = auth.identify(token)
        assert issued_at == NOW - 5
        assert principal.pod_name == "app-0"
    assert len(decoded) == 1 and len(reviewer.calls) == 1
    clock.now = NOW + 30  # its exp: refused without a review, though it was cached
    assert code(auth, token) == "ExpiredTokenException"
    assert len(reviewer.calls) == 1
